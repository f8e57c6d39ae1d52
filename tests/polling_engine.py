"""A submit-and-poll engine (engine API 2) for the tests: each job's command is a process of
this machine, started by ``submit`` and waited for by ``poll``. Remote engines (Dask, SSH)
have the same shape; this one lets the runner's polling path and the engine kit be tested
with real processes."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from a_la_mode.run.engine import Job, LogFile, Result


class _Submitted(NamedTuple):
    process: subprocess.Popen[bytes]
    job: Job
    started: float
    log: Path  # the command's output, until it ends


class PollingShellEngine:
    name = "polling"
    api_version = 2
    placement = "local"

    def __init__(self) -> None:
        self._submitted: dict[int, _Submitted] = {}
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def check(self) -> None:
        pass

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        pass

    def submit(self, job: Job) -> int:
        argv = ["/bin/sh", "-c", job.command] if isinstance(job.command, str) else job.command
        part = Path(f"{job.output_dir}.log")
        with part.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **job.env, **job.environment()},
                close_fds=True,
                start_new_session=True,
                cwd=job.workdir,
            )
        with self._lock:
            number = next(self._numbers)
            self._submitted[number] = _Submitted(process, job, time.monotonic(), part)
        return number

    def poll(self, timeout: float) -> list[tuple[Any, Result]]:
        deadline = time.monotonic() + timeout
        while True:
            ended = [(n, result) for n in self._numbers_now() if (result := self._ended(n))]
            if ended or time.monotonic() >= deadline:
                return ended
            time.sleep(0.005)

    def stop_all(self) -> None:
        for number in self._numbers_now():
            _kill(self._submitted[number].process)

    def _numbers_now(self) -> list[int]:
        with self._lock:
            return list(self._submitted)

    def _ended(self, number: int) -> Result | None:
        process, job, started, part = self._submitted[number]
        seconds = time.monotonic() - started
        timed_out = job.timeout is not None and seconds > job.timeout
        if timed_out:
            _kill(process)
        code = process.wait() if timed_out else process.poll()
        if code is None:
            return None
        with self._lock:
            del self._submitted[number]
        with LogFile(job.log_path) as log:  # created only if the command printed
            log.write(part.read_bytes())
        part.unlink()
        if code < 0:
            return Result(None, seconds, signal=-code, timed_out=timed_out)
        return Result(code, seconds, timed_out=timed_out)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
