"""The engine contract: how a runner asks for one task's command to be run.

An engine is a class registered under the entry point group ``a_la_mode.engines``, in one of
two forms:

- **blocking** (``api_version = 1``, the default): ``run(job)`` runs one ``Job`` and
  returns its ``Result`` when the command has ended; the runner calls it from ``-j``
  threads at once. For engines whose commands run on this machine.
- **submit and poll** (``api_version = 2``): ``submit(job)`` hands the job over and returns
  at once with a handle; ``poll(timeout)`` returns the (handle, ``Result``) of jobs that
  have ended since, waiting up to ``timeout`` seconds for one. One runner thread polls. For
  engines whose workers are elsewhere (a cluster, other hosts): no thread waits per task.

Either way the engine says where its jobs run (``placement``):

- ``"local"``: the job's paths are valid where the command runs, as on this machine or a
  filesystem its workers share at the same paths. It never touches the store: the runner
  stages, publishes and records.
- ``"store"``: the job runs on a worker that reaches the store itself (``job.remote``): the
  worker fetches the inputs by output ID, runs, publishes and creates the success marker
  (``run/worker.py``), and the ``Result`` carries the manifest; the runner only records.

An engine that calls Python function tasks itself sets ``runs_functions = True``; to any
other, the runner hands them as a command (``run/pyfunction.py``). An engine may also have
``parallelism(jobs)``: how many jobs to keep under way, given ``-j`` (None if not given).

The command's output goes through ``LogFile(job.log_path)``, which creates the log only if
there is output. ``prepare`` sees every task before the run
starts, so that a task the engine cannot run is refused before any work is done. ``stop_all``
must end every command still running (the whole process group or container) -- the runner
calls it on Ctrl-C. An engine holding a connection may also have ``close()``, called once
it is no longer needed.

This is version 2 of the contract (``ENGINE_API``); a version 1 engine is a blocking one.
``a_la_mode.testing.EngineContract`` is its test kit, for both forms;
docs/internals/engines.md says how remote engines use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Hashable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, NamedTuple, Protocol, runtime_checkable

from a_la_mode.compile.naming import input_variable
from a_la_mode.errors import AlamodeError
from a_la_mode.store.sizes import human_size

ENGINE_API = 2
"""The version of this contract: engines of versions 1 (blocking) and 2 (submit and poll)
are both run."""
PLACEMENTS = ("local", "store")  # where a job runs: see the module's docstring


class EngineError(AlamodeError):
    """An engine cannot be found, loaded or used."""


class RemoteStore(NamedTuple):
    """For placement ``"store"``: the store a worker opens itself, and what its success
    marker records. ``options`` never hold credentials: workers take theirs from their own
    environment."""

    url: str
    options: Mapping[str, Any]
    plan: str  # the plan's digest
    run: int
    replace: bool = False  # run --force: the worker's output replaces the marked one


class Job(NamedTuple):
    """One attempt at one task: what to run, where its inputs are, where to write. Paths
    are plain strings: a runner makes thousands of jobs a second. Engines only read it."""

    task: str
    output_id: str
    command: str | list[str]
    env: dict[str, str]
    output_dir: str  # the attempt's staging directory: the command writes its output here
    inputs: dict[str, str]  # dependency name -> its published output directory
    log_path: str
    timeout: int | None = None
    spec: Mapping[str, Any] = MappingProxyType({})
    # For a task that lists files: a read-only folder holding exactly the bytes hashed into
    # its spec, at their listed paths. The command runs in it (the docker engine mounts it).
    workdir: str | None = None
    # The longest remaining path from this task, in milliseconds of recorded durations: the
    # order the runner starts ready tasks in, for engines that queue jobs (Dask) to keep.
    priority: int = 0
    # Placement "store" only: where the worker publishes. ``inputs`` then map each
    # dependency to its output ID, ``output_dir`` is "", and ``workdir`` is this machine's
    # checked copy of the listed files, for the engine to ship.
    remote: RemoteStore | None = None

    def environment(self) -> dict[str, str]:
        """The ``ALAMODE_*`` variables the command sees, with this machine's paths."""
        return task_environment(self.task, self.output_id, self.output_dir, self.inputs)


class Result(NamedTuple):
    """How a command ended. ``ok`` only for exit status 0 within the time limit."""

    exit_code: int | None
    seconds: float
    signal: int | None = None
    timed_out: bool = False
    detail: str = ""
    oom_killed: bool = False  # a container's process was killed at its memory limit
    # Placement "store": the manifest (Manifest.to_dict) of the output the worker published
    # and marked, and the worker that published it (another may have been first).
    manifest: Mapping[str, Any] | None = None
    worker: str = ""

    @property
    def ok(self) -> bool:
        """Exit 0, in time, and nothing killed for memory (a killed stage of a pipeline
        can leave a truncated output behind a final exit status of 0)."""
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed

    def describe(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.oom_killed:
            return "killed for running out of memory (its 'memory' limit)"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        if self.exit_code is None:
            return self.detail or "did not run"
        return f"exited with status {self.exit_code}" + (f" ({self.detail})" if self.detail else "")


class LogFile:
    """An attempt's log, created (with its folder) only when there is something to write: a
    command that prints nothing leaves no file (and costs the store no inodes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self.error: OSError | None = None  # why the log could not be written (disk full...)

    def write(self, data: bytes) -> None:
        """Append ``data``. A log that cannot be written (the disk is full) is removed, being
        incomplete, which also gives its room back; ``error`` says why, and the engine fails
        the attempt with it. Later output is read and dropped, so the command never blocks."""
        if not data or self.error is not None:
            return
        try:
            if self._handle is None:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self._handle = open(self.path, "ab")  # noqa: SIM115 - closed by close()
            self._handle.write(data)
            self._handle.flush()  # 'alamode log' may be reading it during the run
        except OSError as err:
            self.error = err
            with contextlib.suppress(OSError):
                if self._handle is not None:
                    self._handle.close()
            self._handle = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def failure(self, result: Result) -> Result:
        """``result``, failed with the reason when the log could not be written."""
        if self.error is None:
            return result
        folder = os.path.dirname(self.path)
        try:
            free = f", {human_size(shutil.disk_usage(folder).free)} free there"
        except OSError:
            free = ""
        why = (
            f"could not write its log in {folder} ({self.error.strerror or self.error}{free}); "
            "the log was removed"
        )
        return result._replace(exit_code=None, signal=None, detail=why)

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@runtime_checkable
class Engine(Protocol):
    """What the runner needs of an engine."""

    name: str

    def check(self) -> None:
        """Fail early (EngineError, one line) when the engine cannot work here."""

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """Once per run, before any task starts, with the specs of the tasks that will run:
        refuse (EngineError naming the task) what this engine cannot run, and tidy up after
        an earlier runner that was killed."""

    def run(self, job: Job) -> Result:
        """Run ``job``'s command to completion; never raise for a failing command."""

    def stop_all(self) -> None:
        """End every command this engine is running now."""


@runtime_checkable
class PollingEngine(Protocol):
    """What the runner needs of a submit-and-poll engine (``api_version = 2``)."""

    name: str
    api_version: int
    placement: str

    def check(self) -> None: ...
    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None: ...

    def submit(self, job: Job) -> Hashable:
        """Hand ``job`` over and return at once: a handle that ``poll`` reports it by."""

    def poll(self, timeout: float) -> list[tuple[Hashable, Result]]:
        """The jobs that have ended since the last call, waiting up to ``timeout`` seconds
        for one. A job whose command failed is a ``Result``, never an exception."""

    def stop_all(self) -> None:
        """End every job submitted and not yet reported; ``poll`` then reports each."""


def api_version(engine: object) -> int:
    """The contract version ``engine`` speaks, checked: a one-line EngineError otherwise."""
    name = getattr(engine, "name", type(engine).__name__)
    version = getattr(engine, "api_version", 1)
    if version not in (1, 2):
        raise EngineError(
            f"engine {name!r} speaks engine API {version!r}; this alamode runs 1 and 2: "
            "upgrade a-la-mode"
        )
    placement = getattr(engine, "placement", "local")
    if placement not in PLACEMENTS:
        raise EngineError(
            f"engine {name!r} runs jobs at placement {placement!r}; this alamode offers "
            f"{', '.join(PLACEMENTS)}: upgrade a-la-mode"
        )
    needs = ("submit", "poll", "stop_all") if version == 2 else ("run", "stop_all")
    missing = [method for method in needs if not callable(getattr(engine, method, None))]
    if missing:
        raise EngineError(
            f"engine {name!r} (engine API {version}) lacks {', '.join(missing)}; "
            "it is not an engine this alamode can run"
        )
    return int(version)


def task_environment(
    task: str, output_id: str, output: str, inputs: Mapping[str, str]
) -> dict[str, str]:
    """The ``ALAMODE_*`` variables (docs/running.md, "What a command sees") for the paths
    the command sees: this machine's for the local engine, the container's for docker's."""
    env = {
        "ALAMODE_OUTPUT": output,
        "ALAMODE_TASK": task,
        "ALAMODE_OUTPUT_ID": output_id,
        "ALAMODE_INPUTS": json.dumps(dict(sorted(inputs.items()))) if inputs else "{}",
    }
    for name, path in inputs.items():
        env[input_variable(name)] = path
    return env
