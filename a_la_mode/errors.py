"""Every error a_la_mode raises on purpose, in one place.

    AlamodeError                  base: a one-line message naming the thing and the fix
    ├── SpecError                 a pipeline description is wrong (DSL or declarative file)
    │   ├── UnrepresentableValue  a spec value bencode cannot hold faithfully (float, bool, ...)
    │   ├── DependencyError       unknown dependency, self-dependency or cycle
    │   └── SpecFileError         a spec file cannot be read, raises, or holds no/several Dags
    ├── PlanError                 a plan file is unreadable, non-canonical, tampered or too new
    └── StoreError                a store cannot be opened or used (the path and why)
        ├── OutputRefused         a task's output holds what an output may not (manifest.py)
        └── UnsafeManifest        a manifest from a store names a path outside its output

The CLI prints ``error: <message>`` and exits with status 2 for any of them; ``--debug``
adds the traceback. Anything else escaping is a bug in a_la_mode.
"""

from __future__ import annotations


class AlamodeError(Exception):
    """Base of every deliberate a_la_mode error; ``str(err)`` is the one-line message."""

    exit_code = 2


class SpecError(AlamodeError):
    """A pipeline description is invalid."""


class UnrepresentableValue(SpecError):
    """A spec value has no faithful bencode form; the message carries its path."""


class DependencyError(SpecError):
    """A dependency names an unknown task, the task itself, or closes a cycle."""


class SpecFileError(SpecError):
    """A spec file cannot be turned into exactly one Dag."""

    def __init__(self, message: str, user_traceback: str | None = None) -> None:
        super().__init__(message)
        self.user_traceback = user_traceback


class PlanError(AlamodeError):
    """A plan file cannot be trusted: corrupt, non-canonical, tampered, or of another format."""


class StoreError(AlamodeError):
    """The store cannot be opened or used: the message says which path and why."""
