"""The spec keys engines act on, and the refusal of a key that is one of them misspelled.

Any other key is hashed and otherwise free (the original a-la-mode's ``sha``, a team's
``owner``). But a key a small edit away from an engine key (``comand``, ``timout``,
``retires``), or one of the names other tools give it (``cmd``, ``max_retries``), is a
mistake that would pass silently: a task whose ``command`` is misspelled has none, and runs
as a join point, recording an empty success. Such a key is refused at compile time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from a_la_mode.errors import SpecError

ENGINE_KEYS = frozenset(
    {
        "args", "artifact", "cleanup", "code", "command", "cpus", "env", "files",
        "function", "image", "memory", "network", "retries", "timeout",
    }
)  # fmt: skip
LONG_ENGINE_KEYS = sorted(key for key in ENGINE_KEYS if len(key) >= 5)
# How alike a key must be to one of those to be a typo of it: comand, timout, retires and
# artefact are (0.86 to 0.93); comment (0.71 to command) and memory_mb (0.80) are not.
NEAR_MISS = 0.85
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


@functools.cache
def _near(key: str) -> str | None:
    """The engine key ``key`` (case ignored) is a near miss of, if any: both of five letters
    or more, alike by difflib's ratio (as ``did you mean`` elsewhere). Asked once per key,
    however many tasks have it."""
    lowered = key.lower()
    if lowered in ENGINE_KEYS:
        return lowered  # "Command"
    if len(lowered) < 5:  # short free keys (node, mode, tags) are too near to tell
        return None
    import difflib  # only for a key engines do not know

    close = difflib.get_close_matches(lowered, LONG_ENGINE_KEYS, n=1, cutoff=NEAR_MISS)
    return close[0] if close else None
