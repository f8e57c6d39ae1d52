"""The engine contract: how a runner asks for one task's command to be run.

An engine is a class registered under the entry point group ``a_la_mode.engines``. It runs
one ``Job`` at a time per call (the runner calls it from several threads at once), blocking
until the command ends, and reports a ``Result``. It never touches the store: the runner
stages, publishes and records. ``stop_all`` must end every command still running (the
whole process group or container) -- the runner calls it on Ctrl-C.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import AlamodeError


class EngineError(AlamodeError):
    """An engine cannot be found, loaded or used."""


@dataclass(frozen=True)
class Job:
    """One attempt at one task: what to run, where its inputs are, where to write."""

    task: str
    output_id: str
    command: str | list[str]
    env: dict[str, str]
    output_dir: Path
    inputs: dict[str, Path]
    log_path: Path
    timeout: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The ``ALAMODE_*`` variables the command sees (DESIGN.md, "Running a task")."""
        env = {
            "ALAMODE_OUTPUT": str(self.output_dir),
            "ALAMODE_TASK": self.task,
            "ALAMODE_OUTPUT_ID": self.output_id,
            "ALAMODE_INPUTS": json.dumps({k: str(v) for k, v in sorted(self.inputs.items())}),
        }
        for name, path in self.inputs.items():
            env[input_variable(name)] = str(path)
        return env


@dataclass(frozen=True)
class Result:
    """How a command ended. ``ok`` only for exit status 0 within the time limit."""

    exit_code: int | None
    seconds: float
    signal: int | None = None
    timed_out: bool = False
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        if self.exit_code is None:
            return self.detail or "did not run"
        return f"exited with status {self.exit_code}" + (f" ({self.detail})" if self.detail else "")


@runtime_checkable
class Engine(Protocol):
    """What the runner needs of an engine."""

    name: str

    def check(self) -> None:
        """Fail early (EngineError, one line) when the engine cannot work here."""

    def run(self, job: Job) -> Result:
        """Run ``job``'s command to completion; never raise for a failing command."""

    def stop_all(self) -> None:
        """End every command this engine is running now."""


def input_variable(name: str) -> str:
    """``ALAMODE_INPUT_<NAME>``: upper-cased, every non-alphanumeric character as ``_``."""
    return "ALAMODE_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
