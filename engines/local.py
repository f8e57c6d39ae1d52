"""The local engine: each task's command as a subprocess of this machine.

A ``command`` string runs through ``/bin/sh -c``; a list runs as argv, without a shell. Each
command gets its own process group, so a timeout or Ctrl-C ends everything it started.
Output (stdout and stderr together) goes to the attempt's log file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

from a_la_mode.engine import Job, Result

GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL


class LocalEngine:
    """Run commands as local processes."""

    name = "local"

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopping = False

    def check(self) -> None:
        """Nothing to check: a POSIX shell is always at /bin/sh."""

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """Nothing to refuse: any command can be run by a shell here."""

    def run(self, job: Job) -> Result:
        argv = ["/bin/sh", "-c", job.command] if isinstance(job.command, str) else job.command
        env = {**os.environ, **job.env, **job.environment()}
        started = time.monotonic()
        with open(job.log_path, "ab") as log:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as err:
                log.write(f"alamode: cannot start {argv[0]}: {err.strerror}\n".encode())
                return Result(
                    None,
                    time.monotonic() - started,
                    detail=f"cannot start {argv[0]}: {err.strerror}",
                )
            with self._lock:
                self._running.add(process)
                if self._stopping:
                    _end_group(process)
            timed_out = False
            try:
                process.wait(timeout=job.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                log.write(f"\nalamode: timed out after {job.timeout} s; stopping it\n".encode())
                log.flush()
                _end_group(process)
            finally:
                with self._lock:
                    self._running.discard(process)
                _kill_leftovers(process)
        seconds = time.monotonic() - started
        code = process.returncode
        if code < 0:
            return Result(None, seconds, signal=-code, timed_out=timed_out)
        return Result(code, seconds, timed_out=timed_out)

    def stop_all(self) -> None:
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for process in running:
            _end_group(process)


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's whole process group, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            # the leader is gone; make sure no child it left behind survives
            os.killpg(process.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_leftovers(process: subprocess.Popen[bytes]) -> None:
    """Background children a command left behind must not write into a published output."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
