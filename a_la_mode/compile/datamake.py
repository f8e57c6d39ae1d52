"""datamake flows, loaded as they are: JSON with ``version``, ``description``, an optional
``namespace``, and a list of ``tasks`` (``id``, ``command``, ``dependencies``, ``artifact``,
``cleanup``).

    {"version": "1.0", "namespace": "examples", "tasks": [
      {"id": "download", "command": "fetch ${username} > /tmp/u-${username}.json",
       "artifact": "/tmp/u-${username}.json", "cleanup": true},
      {"id": "grep-name", "command": "grep name /tmp/u-${username}.json",
       "dependencies": ["download"]}]}

Each task becomes ``NAMESPACE.ID`` (``ID`` without a namespace); a dependency may name a task
by ``ID`` or ``NAMESPACE.ID``. Every ``${name}`` the flow uses is a parameter without a
default (datamake declared none). ``artifact`` (a path or any fsspec URL) and ``cleanup``
stay in the spec, so they are part of the output ID; the runner reads them (run/artifacts.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a_la_mode.compile.encoder import TaskDef
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.compile.params import Param, used
from a_la_mode.errors import SpecFileError

FIELDS = {"id", "command", "dependencies", "artifact", "cleanup"}
TOP = {"version", "description", "namespace", "tasks"}


def is_flow(raw: object) -> bool:
    """Whether a decoded JSON file is a datamake flow (its tasks are a list)."""
    return isinstance(raw, dict) and isinstance(raw.get("tasks"), list)


class DatamakeFlow:
    """A datamake flow, read: what a spec file gives the compiler."""

    def __init__(self, raw: Mapping[str, Any], where: str) -> None:
        self.meta, self._defs, self._params = load_flow(raw, where)
        self.matrix: dict[str, list[str | int]] = {}

    def task_defs(self) -> list[TaskDef]:
        return list(self._defs)

    def declared(self) -> dict[str, Param]:
        return dict(self._params)


def load_flow(
    raw: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[TaskDef], dict[str, Param]]:
    """The flow's meta, tasks and parameters, checked; errors name the task and field."""
    unknown = sorted(set(raw) - TOP)
    if unknown:
        raise SpecFileError(
            f"{where}: unknown field {unknown[0]!r} in a datamake flow ({', '.join(sorted(TOP))})"
        )
    namespace = raw.get("namespace") or ""
    if not isinstance(namespace, str):
        raise SpecFileError(f'{where}: namespace is text, e.g. "examples"')
    ids = []
    for number, task in enumerate(raw["tasks"]):
        if not isinstance(task, dict) or not isinstance(task.get("id"), str):
            raise SpecFileError(f'{where}: tasks[{number}] needs an "id" (text)')
        ids.append(task["id"])

    def qualified(name: str) -> str:
        if namespace and name in ids:
            return f"{namespace}.{name}"
        return name

    defs = []
    for task in raw["tasks"]:
        label = f"{where}: task {task['id']!r}"
        extra = sorted(set(task) - FIELDS)
        if extra:
            close = did_you_mean(extra[0], FIELDS)
            raise SpecFileError(
                f"{label}: unknown field {extra[0]!r}{close} ({', '.join(sorted(FIELDS))})"
            )
        spec: dict[str, Any] = {}
        for field in ("command", "artifact"):
            value = task.get(field)
            if value is not None and not isinstance(value, str):
                raise SpecFileError(f"{label}: {field} is text")
            if value:
                spec[field] = value
        cleanup = task.get("cleanup", False)
        if not isinstance(cleanup, bool):
            raise SpecFileError(f"{label}: cleanup is true or false")
        if cleanup:
            if "artifact" not in spec:
                raise SpecFileError(f"{label}: cleanup removes the task's artifact; give one")
            spec["cleanup"] = 1
        deps = task.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise SpecFileError(f"{label}: dependencies is a list of task ids")
        defs.append(TaskDef(qualified(task["id"]), spec, [qualified(d) for d in deps]))
    names: set[str] = set()
    for task_def in defs:
        names |= used(task_def.spec)
    meta = {key: raw[key] for key in ("version", "description", "namespace") if key in raw}
    return meta, defs, {name: Param() for name in sorted(names)}
