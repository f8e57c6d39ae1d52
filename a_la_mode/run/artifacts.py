"""Artifacts, as datamake had them: a task's ``artifact`` is a location outside the store
(a path or any fsspec URL) that its command writes. The artifact is the truth for such a
task: while it exists the task is done (``status`` says "artifact exists"), and when it is
gone the task runs again, whatever the store recorded. ``cleanup`` removes the artifact once
everything downstream of its task in the run has succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError

ARTIFACT = "artifact"


def _filesystem(location: str) -> tuple[Any, str]:
    import fsspec  # only for flows with artifacts

    try:
        fs, path = fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as err:
        raise AlamodeError(f"artifact {location}: {err}") from None
    return fs, str(path)


def artifact_of(plan: PlanBase, name: str) -> str | None:
    location = plan.tasks[name].get(ARTIFACT)
    return location if isinstance(location, str) and location else None


def exists(location: str) -> bool:
    fs, path = _filesystem(location)
    try:
        return bool(fs.exists(path))
    except OSError as err:
        raise AlamodeError(f"artifact {location}: cannot tell whether it exists ({err})") from None


def artifact_states(plan: PlanBase, names: Iterable[str]) -> tuple[set[str], set[str]]:
    """The tasks among ``names`` with an artifact: those whose artifact exists, and those
    whose artifact does not."""
    present: set[str] = set()
    absent: set[str] = set()
    for name in names:
        location = artifact_of(plan, name)
        if location is not None:
            (present if exists(location) else absent).add(name)
    return present, absent


def removable(plan: PlanBase, names: list[str], done: set[str]) -> list[tuple[str, str]]:
    """(task, artifact) for each task of ``names`` marked ``cleanup`` that is done, and
    whose dependents among ``names`` are all done."""
    chosen = set(names)
    dependents: dict[str, list[str]] = {}
    for name in names:
        for dep in plan.inputs(name):
            dependents.setdefault(dep, []).append(name)
    result = []
    for name in names:
        location = artifact_of(plan, name)
        if location is None or not plan.tasks[name].get("cleanup") or name not in done:
            continue
        if all(d in done for d in dependents.get(name, []) if d in chosen):
            result.append((name, location))
    return result


def remove(location: str) -> None:
    fs, path = _filesystem(location)
    try:
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except OSError as err:
        raise AlamodeError(f"artifact {location}: cannot remove it ({err})") from None
