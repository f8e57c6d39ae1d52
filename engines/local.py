"""The local engine: each task's command as a subprocess of this machine.

A ``command`` string runs through ``/bin/sh -c``; a list runs as argv, without a shell (found
on the task's own PATH). Each command starts in a session of its own (``subprocess.Popen``
with ``start_new_session``), so a timeout or Ctrl-C ends everything it started, and when the
command ends, whatever it left running in its process group is killed before its output is
sealed. Output (stdout and stderr together) comes through a pipe into the attempt's log file,
which is only created if the command prints something.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

from a_la_mode.run.engine import Job, LogFile, Result

from .orphans import end_orphans, kill_group, this_runner

GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL
READ_SIZE = 1 << 16


class LocalEngine:
    """Run commands as local processes."""

    name = "local"

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._marker = this_runner()

    def check(self) -> None:
        """Nothing to check: a POSIX shell is always at /bin/sh."""

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """End the commands of earlier runners that were killed (kill -9), so that no task
        runs twice at once and nothing writes into a staging directory being cleaned."""
        end_orphans()

    def run(self, job: Job) -> Result:
        argv = ["/bin/sh", "-c", job.command] if isinstance(job.command, str) else job.command
        shell = isinstance(job.command, str)  # through /bin/sh: its 126 and 127 are glossed
        started = time.monotonic()
        env = {**os.environ, **job.env, **job.environment(), **self._marker}
        with LogFile(job.log_path) as log:  # created only when written to
            unfit = _unfit_variable(env)
            if unfit:
                return _cannot_start(log, f"the command: {unfit}", started)
            reader, writer = os.pipe()
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=writer,
                    stderr=subprocess.STDOUT,
                    env=env,
                    close_fds=True,
                    start_new_session=True,
                    cwd=job.workdir,  # a task that lists files runs among them
                )
            except (OSError, ValueError) as err:
                os.close(reader)
                why = getattr(err, "strerror", None) or str(err)
                return _cannot_start(log, f"{argv[0]}: {why}", started)
            finally:
                os.close(writer)  # the command holds the only write end now
            with self._lock:
                self._running.add(process)
                if self._stopping:
                    _end_group(process)
            try:
                timed_out = not _copy_until_exit(process, reader, log, job.timeout)
                if timed_out:
                    log.write(f"\nalamode: timed out after {job.timeout} s; stopping it\n".encode())
                    _end_group(process)
                process.wait()
            finally:
                with self._lock:
                    self._running.discard(process)
                # Whatever it left running must not write into a published output.
                kill_group(process.pid)
                _drain(reader, log)  # what the group wrote before it ended
                os.close(reader)
            return log.failure(_ended(process.returncode, started, timed_out, shell))

    def stop_all(self) -> None:
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for process in running:
            _end_group(process)


# What /bin/sh means by these exit statuses, said next to the number (the log has the
# shell's own words: "sh: 1: tuoch: not found").
_SHELL_SAYS = {
    126: "the shell could not execute the command",
    127: "the shell found no such command",
}


def _ended(code: int, started: float, timed_out: bool, shell: bool) -> Result:
    """The result of a command that ran: ``code`` as Popen's (-N when killed by signal N);
    ``shell``: it ran through /bin/sh."""
    seconds = time.monotonic() - started
    if code < 0:
        return Result(None, seconds, signal=-code, timed_out=timed_out)
    return Result(
        code, seconds, timed_out=timed_out, detail=_SHELL_SAYS.get(code, "") if shell else ""
    )


def _unfit_variable(env: Mapping[str, str]) -> str:
    """Why ``env`` cannot be a process's environment ("" if it can): C strings would cut a
    NUL short, and a name holding '=' would read as another variable."""
    for name, value in env.items():
        if "\0" in value:
            return f"variable {name} holds a NUL character"
        if not name or "=" in name or "\0" in name:
            return f"{name!r} cannot be a variable's name (it holds '=' or NUL)"
    return ""


def _cannot_start(log: LogFile, why: str, started: float) -> Result:
    """A command that could not be started: said in its log and its result."""
    log.write(f"alamode: cannot start {why}\n".encode())
    return Result(None, time.monotonic() - started, detail=f"cannot start {why}")


def _copy_until_exit(
    process: subprocess.Popen[bytes], reader: int, log: LogFile, timeout: int | None
) -> bool:
    """Copy the command's output into its log until the command exits (True) or its time is
    up (False). Waits on a pidfd, so a background child holding the pipe open cannot keep
    us waiting after the command itself has ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        exited: int | None = os.pidfd_open(process.pid)
    except OSError:  # no pidfd here: poll the process now and then
        exited = None
    poller = select.poll()
    poller.register(reader, select.POLLIN)
    if exited is not None:
        poller.register(exited, select.POLLIN)
    try:
        while True:
            wait_ms: int | None = None
            if deadline is not None:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if exited is None:
                wait_ms = 50 if wait_ms is None else min(wait_ms, 50)
            for fd, _ in poller.poll(wait_ms):
                if fd == reader:
                    data = os.read(reader, READ_SIZE)
                    if data:
                        log.write(data)
                    else:  # every writer closed it; the command may still run
                        poller.unregister(reader)
                elif fd == exited:
                    return True
            if exited is None and process.poll() is not None:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
    finally:
        if exited is not None:
            os.close(exited)


def _drain(reader: int, log: LogFile) -> None:
    """Whatever is left in the pipe, without waiting for writers that escaped the group."""
    os.set_blocking(reader, False)
    with contextlib.suppress(BlockingIOError):
        while data := os.read(reader, READ_SIZE):
            log.write(data)


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's whole process group, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return  # the leader is gone; kill_group ends what it left behind
        except subprocess.TimeoutExpired:
            continue
