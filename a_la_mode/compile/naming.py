"""Task names: what is allowed, and the closest known name when one is mistyped."""

from __future__ import annotations

import re
from collections.abc import Iterable

from a_la_mode.errors import SpecError

NAME_PATTERN = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
    r"(?:\[[A-Za-z_][A-Za-z0-9_]*=[A-Za-z0-9_.:+-]+(?:,[A-Za-z_][A-Za-z0-9_]*=[A-Za-z0-9_.:+-]+)*\])?"
)
"""Letters, digits, ``_``, ``.`` and ``-``, not starting with ``.`` or ``-``: ASCII only, so
names need no Unicode normalisation; then, for one instance of a task per parameter value
(``--eval-param``), the values it was made for: ``fetch[day=2026-12-01,region=eu]``.
Always ``fullmatch`` it (``$`` would let a final newline through)."""
MAX_NAME = 255
"""Names are file names in places (a container's input mounts): at most 255 characters."""


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid task name."""
    return len(name) <= MAX_NAME and NAME_PATTERN.fullmatch(name) is not None


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid task name, else raise SpecError saying how to fix it."""
    if not isinstance(name, str):
        raise SpecError(f"task name {name!r} is a {type(name).__name__}; task names are strings")
    if not name:
        raise SpecError("a task has an empty name; give every task a name such as 'download'")
    if len(name) > MAX_NAME:
        raise SpecError(
            f"task name {name[:40]!r}… is {len(name)} characters long; "
            f"a task name has at most {MAX_NAME}: shorten it"
        )
    if not NAME_PATTERN.fullmatch(name):
        if name[0] in ".-":
            why = f"starts with {name[0]!r}"
        else:
            bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_.-]", c)})
            why = "contains " + ", ".join(repr(c) for c in bad)
        raise SpecError(
            f"task name {name!r} {why}; use letters, digits, '_', '.' and '-', "
            f"not starting with '.' or '-' (e.g. {suggest_valid(name)!r})"
        )
    return name


def suggest_valid(name: str) -> str:
    """A valid name close to ``name``: bad characters become ``_``."""
    fixed = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".-")
    return fixed or "task"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``", did you mean 'x'?"`` for the closest known name, or ``""`` when none is close."""
    import difflib  # only for a mistake: 2 ms of every command's start-up otherwise

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


def base_name(name: str) -> str:
    """The task an instance was made from: ``fetch`` for ``fetch[day=2026-12-01]``."""
    return name.partition("[")[0]


def input_variable(name: str) -> str:
    """``ALAMODE_INPUT_<NAME>``: upper-cased, every non-alphanumeric character as ``_``. An
    instance's is its task's (``fetch[day=...]`` gives ``ALAMODE_INPUT_FETCH``), so one
    command serves every instance."""
    return "ALAMODE_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", base_name(name)).upper()


def input_clash(deps: Iterable[str]) -> str | None:
    """Why two of a task's dependencies would share one ``ALAMODE_INPUT_`` variable (so the
    command would silently read one of them), or None."""
    seen: dict[str, str] = {}
    for dep in deps:
        variable = input_variable(dep)
        if variable in seen:
            return (
                f"its dependencies {seen[variable]!r} and {dep!r} would both be given as "
                f"{variable}; rename one of them"
            )
        seen[variable] = dep
    return None
