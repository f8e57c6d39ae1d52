"""The local engine: each task's command as a subprocess of this machine.

A ``command`` string runs through ``/bin/sh -c``; a list runs as argv, without a shell (found
on the task's own PATH). Each command gets its own process group, so a timeout or Ctrl-C ends
everything it started. Commands start with ``posix_spawn``: of ``subprocess.Popen``'s work,
only what a command needs (a new session, default signal handling, no inherited descriptors).
Output (stdout and stderr together) comes through a pipe into the attempt's log file, which
is only created if the command prints something.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from a_la_mode import native
from a_la_mode.engine import Job, LogFile, Result

from .spawn import Environment, closes_inherited_descriptors, encoded_argv, spawn

GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL
READ_SIZE = 1 << 16


class LocalEngine:
    """Run commands as local processes."""

    name = "local"

    def __init__(self) -> None:
        self._running: set[_Child] = set()
        self._lock = threading.Lock()
        self._stopping = False
        # This process's environment, checked and encoded once: doing that for forty
        # variables at every command was a measurable share of starting one.
        self._environ = Environment(os.environ)
        if not closes_inherited_descriptors():
            _keep_inherited_descriptors_to_ourselves()
        # For the compiled path: stop_all writes a byte here, and every command waited for
        # in C sees it readable and ends its process group.
        self._stop_pipe: tuple[int, int] | None = None
        if native.compiled is not None:
            self._stop_pipe = os.pipe()

    def close(self) -> None:
        """Let go of the stop pipe (a run's engine lives until the run ends)."""
        if self._stop_pipe is not None:
            for fd in self._stop_pipe:
                os.close(fd)
            self._stop_pipe = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def check(self) -> None:
        """Nothing to check: a POSIX shell is always at /bin/sh."""

    def describe(self) -> str:
        """Whether its per-task steps (and the directory store's) are compiled here."""
        return native.describe()

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """Nothing to refuse: any command can be run by a shell here."""

    def run(self, job: Job) -> Result:
        argv = ["/bin/sh", "-c", job.command] if isinstance(job.command, str) else job.command
        shell = isinstance(job.command, str)  # through /bin/sh: its 126 and 127 are glossed
        started = time.monotonic()
        try:
            env = self._environ.overlay({**job.env, **job.environment()})
        except ValueError as err:
            with LogFile(job.log_path) as log:
                return _cannot_start(log, f"the command: {err}", started)
        compiled = native.compiled
        if compiled is not None and self._stop_pipe is not None:
            return self._run_compiled(compiled, job, argv, env, started, shell)
        with LogFile(job.log_path) as log:  # created only when written to
            reader, writer = os.pipe()
            try:
                process = _Child.spawn(argv, env, writer)
            except OSError as err:
                os.close(reader)
                return _cannot_start(log, f"{argv[0]}: {err.strerror}", started)
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
                process.wait(None)
            finally:
                with self._lock:
                    self._running.discard(process)
                _kill_leftovers(process)
                _drain(reader, log)  # what the group wrote before it ended
                os.close(reader)
        assert process.returncode is not None  # waited for above
        return _ended(process.returncode, started, timed_out, shell)

    def _run_compiled(
        self,
        compiled: Any,
        job: Job,
        argv: list[str],
        env: Environment,
        started: float,
        shell: bool,
    ) -> Result:
        """``run`` through _native.c: the same steps, in one call that lets go of the
        interpreter lock until the command has ended."""
        assert self._stop_pipe is not None
        try:
            program = _find_program(argv[0], env)
            status, timed_out = compiled.run(
                os.fsencode(program),
                encoded_argv(program, argv),
                env.entries(),
                os.fsencode(job.log_path),
                -1 if job.timeout is None else job.timeout * 1000,
                self._stop_pipe[0],
            )
        except OSError as err:
            with LogFile(job.log_path) as log:
                return _cannot_start(log, f"{argv[0]}: {err.strerror}", started)
        return _ended(os.waitstatus_to_exitcode(status), started, timed_out, shell)

    def stop_all(self) -> None:
        with self._lock:
            self._stopping = True
            running = list(self._running)
            if self._stop_pipe is not None:
                os.write(self._stop_pipe[1], b"x")  # every compiled wait sees it
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


def _cannot_start(log: LogFile, why: str, started: float) -> Result:
    """A command that could not be started: said in its log and its result."""
    log.write(f"alamode: cannot start {why}\n".encode())
    return Result(None, time.monotonic() - started, detail=f"cannot start {why}")


def _copy_until_exit(process: _Child, reader: int, log: LogFile, timeout: int | None) -> bool:
    """Copy the command's output into its log until the command exits (True) or its time is
    up (False). Waits on a pidfd, so a background child holding the pipe open cannot keep
    us waiting after the command itself has ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        exited = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd here: poll the process now and then
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
            ready = poller.poll(wait_ms)
            for fd, _ in ready:
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


def _end_group(process: _Child) -> None:
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
        except TimeoutError:
            continue


def _kill_leftovers(process: _Child) -> None:
    """Background children a command left behind must not write into a published output."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class _Child:
    """A command started with ``posix_spawn`` (a vfork and an exec, with none of
    ``subprocess.Popen``'s work in Python per command) in a new session, so its process group
    can be ended as one. Standard input is ``/dev/null``; stdout and stderr go to ``output``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # as Popen's: -N when killed by signal N
        self._lock = threading.Lock()  # the worker and a Ctrl-C may both wait for it

    @classmethod
    def spawn(cls, argv: list[str], env: Environment, output: int) -> _Child:
        """Start ``argv``; OSError (with ``strerror``) when it cannot be run."""
        return cls(spawn(_find_program(argv[0], env), argv, env, output))

    def poll(self) -> int | None:
        """The exit status if the command has ended (reaping it), else None."""
        with self._lock:
            if self.returncode is None:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None) -> int:
        """Wait for the command to end; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"process {self.pid} still running")
            time.sleep(0.005)
        return code


def _find_program(name: str, env: Environment) -> str:
    """Where ``name`` is, searched in the command's own PATH as a shell would."""
    if "/" in name:
        return name
    search = env.get(b"PATH")
    if search is None:
        search = os.defpath.encode()
    found = shutil.which(name, path=os.fsdecode(search))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return found


def _keep_inherited_descriptors_to_ourselves() -> None:
    """Mark every descriptor above stderr that this process inherited as close-on-exec, so
    that no command sees them (what ``Popen(close_fds=True)`` does for each command).
    Python makes every descriptor it opens close-on-exec already. Needed only where
    ``spawn`` cannot close them in the child; it affects the whole process (a library user
    keeping an inheritable descriptor for children of their own loses that)."""
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc/self/fd"):
            fd = int(entry)
            if fd > 2:
                with contextlib.suppress(OSError):
                    if os.get_inheritable(fd):
                        os.set_inheritable(fd, False)
