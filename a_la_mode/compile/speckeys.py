"""The spec keys engines act on, and the refusal of a key that is one of them misspelled.

Any other key is hashed and otherwise free (the original a-la-mode's ``sha``, a team's
``owner``). But a key a small edit away from an engine key (``comand``, ``timout``,
``retires``), or one of the names other tools give it (``cmd``, ``max_retries``), is a
mistake that would pass silently: a task whose ``command`` is misspelled has none, and runs
as a join point, recording an empty success. Such a key is refused at compile time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a_la_mode.errors import SpecError

ENGINE_KEYS = frozenset(
    {
        "args", "artifact", "cleanup", "code", "command", "cpus", "env", "files",
        "function", "image", "memory", "network", "retries", "timeout",
    }
)  # fmt: skip
# Other tools' names for an engine key, refused with ours as the way out.
OTHER_NAMES = {
    "cmd": "command",
    "commands": "command",  # mara's list of commands: not a key of ours (yet)
    "script": "command",
    "shell": "command",
    "run": "command",
    "environment": "env",
    "max_retries": "retries",
    "retry": "retries",
    "max_attempts": "retries",
    "timeout_seconds": "timeout",
    "func": "function",
    "file": "files",
    "cpu": "cpus",
    "arg": "args",
    "envs": "env",
    "enviroment": "env",
}


# Free keys a near-miss test would take for engine keys: words people use for their own notes.
FREE = frozenset({"comment", "comments", "commit", "images", "networks", "commandline"})
# A task's own fields, written inside its spec by mistake: they would be hashed and ignored.
TASK_FIELDS = frozenset({"deps", "dependencies", "depends", "depends_on", "upstream"})


def check_spec_keys(task: str, spec: Mapping[str, Any]) -> None:
    """Refuse a key of ``task``'s spec that looks like a misspelled engine key, or a task's
    dependencies written inside its spec."""
    for key in spec:
        if key in ENGINE_KEYS or key in FREE or not isinstance(key, str):
            continue
        if key.lower() in TASK_FIELDS:
            raise SpecError(
                f"task {task!r}: spec key {key!r} looks like the task's dependencies, which "
                "go beside its spec (deps: [...]), not inside it, where they would be ignored"
            )
        meant = OTHER_NAMES.get(key.lower()) or _near(key)
        if meant is not None:
            raise SpecError(
                f"task {task!r}: spec key {key!r} is not one engines know, did you mean "
                f"{meant!r}? (a key engines do not know is hashed and ignored; rename it "
                "if it is meant as one of yours)"
            )


def _near(key: str) -> str | None:
    """The engine key within a small edit distance of ``key`` (case ignored), if any."""
    lowered = key.lower()
    if lowered in ENGINE_KEYS:
        return lowered  # "Command"
    if len(lowered) < 5:  # short free keys (node, mode, tags) are too near to tell
        return None
    allowed = 1 if len(lowered) < 9 else 2  # comment is two edits from command: not a typo
    best = min(sorted(ENGINE_KEYS), key=lambda known: _distance(lowered, known))
    return best if len(best) >= 5 and _distance(lowered, best) <= allowed else None


def _distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, swap two neighbours) from ``a`` to ``b``."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]
