"""The SSH engine (``--engine ssh --host user@host[:port]``): each task's command runs on a
remote host, as older tools ran scripts "locally or over SSH". Built on asyncssh: one
connection per host, a channel per task, all served by one event-loop thread.

Inputs and outputs travel over SFTP, so a host needs nothing but a POSIX shell and an SSH
server, and the store stays on this machine (any store: the runner publishes as for the
local engine). For each job, on its host:

1. a fresh folder (``/tmp/alamode-job-<random>``, mode 0700) receives each input, under
   ``in/<name>``, and the task's listed files, under ``files/`` (where the command then
   starts);
2. the command runs with the ``ALAMODE_*`` variables pointing there, ``out/`` as its
   output; what it prints comes back into the task's log as it is printed;
3. on exit 0, ``out/`` is downloaded into the staging directory, which the runner seals
   and publishes; the folder is removed whatever happened.

Host keys are checked against ``~/.ssh/known_hosts`` (or ``known_hosts=``): an unknown or
changed key is refused, never accepted. Client keys come from the usual places (the SSH
agent, ``~/.ssh/id_*``). A connection lost mid-task fails that attempt, saying so; the
next run resumes from what was published. The job's folder it left on the host is removed
by a later connection, once it is a day old.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
import shlex
import threading
import time
import uuid
import warnings
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from a_la_mode.run.engine import EngineError, Job, LogFile, Result, task_environment
from a_la_mode.run.pyfunction import refuse_function_tasks

T = TypeVar("T")
HOST = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[^@:\s]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d+))?$"
)
CONNECT_SECONDS = 15
STALE_MINUTES = 24 * 60
# Job folders of this user, untouched for a day: left by a connection that dropped.
LEFT_BEHIND = (
    "find /tmp -maxdepth 1 -name 'alamode-job-*' -user \"$(id -u)\" "
    f"-mmin +{STALE_MINUTES} -exec chmod -R u+w {{}} + -exec rm -rf {{}} + 2>/dev/null; true"
)
GRACE_SECONDS = 3  # between SIGTERM and SIGKILL of a remote command


class Host(NamedTuple):
    user: str | None
    host: str
    port: int

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


def parse_host(text: str) -> Host:
    """``user@host[:port]``; one line naming the value otherwise."""
    found = HOST.match(text)
    if found is None or (found["port"] and not 0 < int(found["port"]) < 65536):
        raise EngineError(f"--host {text!r} is not user@host[:port], e.g. deploy@build1:2222")
    return Host(found["user"], found["host"].strip("[]"), int(found["port"] or 22))


class _Slot:
    """One host: its connection, and how many jobs it is running."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.connection: Any = None
        self.sftp: Any = None
        self.connecting: asyncio.Lock | None = None  # made on the loop's thread
        self.busy = 0


class SshEngine:
    """Run commands on SSH hosts, moving inputs and outputs over SFTP."""

    name = "ssh"

    def __init__(self, hosts: Sequence[str] | None = None, known_hosts: str | None = None) -> None:
        given = list(hosts or filter(None, os.environ.get("ALAMODE_SSH_HOSTS", "").split(",")))
        self.hosts = [parse_host(text.strip()) for text in given]
        self.known_hosts = known_hosts
        self._slots = [_Slot(host) for host in self.hosts]
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: dict[int, tuple[_Slot, str]] = {}  # job number -> its host, remote pid
        self._stopping = False
        self._count = 0

    def check(self) -> None:
        """Every host reachable, its key known, and we let in: one line for the first not."""
        if not self.hosts:
            raise EngineError(
                "engine 'ssh' needs a host: --host user@host[:port] (repeatable), or "
                "$ALAMODE_SSH_HOSTS"
            )
        try:
            _asyncssh()
        except ImportError:
            raise EngineError("engine 'ssh' needs asyncssh: pip install 'a-la-mode[ssh]'") from None
        for slot in self._slots:
            self._call(self._connect(slot))

    def describe(self) -> str:
        return ", ".join(map(str, self.hosts)) or "no host given (--host user@host)"

    def parallelism(self, jobs: int | None) -> int:
        """``-j`` jobs on each host (default: this machine's cores on each)."""
        return (jobs or os.cpu_count() or 1) * max(1, len(self.hosts))

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        refuse_function_tasks(self.name, tasks, "runs commands on other hosts")

    def run(self, job: Job) -> Result:
        with self._lock:
            if self._stopping:
                return Result(None, 0.0, detail="stopped before it started")
            slot = min(self._slots, key=lambda s: s.busy)
            slot.busy += 1
            self._count += 1
            number = self._count
        started = time.monotonic()
        try:
            with LogFile(job.log_path) as log:
                try:
                    result = self._call(self._run(slot, number, job, log))
                except _Lost as err:
                    why = f"lost the connection to {slot.host}: {err}"
                    log.write(f"\nalamode: {why}\n".encode())
                    result = Result(None, time.monotonic() - started, detail=why)
                return log.failure(result)
        finally:
            with self._lock:
                slot.busy -= 1
                self._running.pop(number, None)

    def stop_all(self) -> None:
        """End every remote command under way (its whole process group)."""
        with self._lock:
            self._stopping = True
            running = list(self._running.values())
        for slot, pid in running:
            with contextlib.suppress(Exception):
                self._call(_kill_group(slot, pid))

    def close(self) -> None:
        """Close every connection, then the event loop and its thread."""
        if self._loop is None:
            return

        async def shut() -> None:
            for slot in self._slots:
                if slot.sftp is not None:
                    slot.sftp.exit()
                if slot.connection is not None:
                    slot.connection.close()
                    await slot.connection.wait_closed()
                slot.connection = slot.sftp = None

        with contextlib.suppress(Exception):
            self._call(shut())
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()

    # -- on the event loop's thread ------------------------------------------------------------

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the engine's event loop (started on first use); wait for it."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="alamode-ssh", daemon=True
                )
                self._thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(work, loop).result()

    async def _connect(self, slot: _Slot) -> Any:
        if slot.connecting is None:
            slot.connecting = asyncio.Lock()
        async with slot.connecting:  # jobs starting together share one connection
            return await self._connect_now(slot)

    async def _connect_now(self, slot: _Slot) -> Any:
        asyncssh = _asyncssh()

        if slot.connection is not None and not slot.connection.is_closed():
            return slot.connection
        host = slot.host
        options: dict[str, Any] = {"port": host.port, "username": host.user}
        if self.known_hosts is not None:
            options["known_hosts"] = self.known_hosts
        try:
            slot.connection = await asyncio.wait_for(
                asyncssh.connect(host.host, **options), CONNECT_SECONDS
            )
            slot.sftp = await slot.connection.start_sftp_client()  # shared by its jobs
            await slot.connection.run(LEFT_BEHIND)  # by jobs whose connection dropped
        except asyncssh.HostKeyNotVerifiable as err:
            where = self.known_hosts or "~/.ssh/known_hosts"
            raise EngineError(
                f"host {host}: its host key is not trusted ({err.reason}); it is never "
                f"accepted unseen: check its fingerprint, then add it to {where} "
                f"(ssh-keyscan -p {host.port} {host.host})"
            ) from None
        except asyncssh.PermissionDenied:
            raise EngineError(
                f"host {host}: permission denied; give the user a key this machine has "
                "(ssh-agent or ~/.ssh/id_*) in its authorized_keys"
            ) from None
        except (OSError, asyncssh.Error, TimeoutError) as err:
            raise EngineError(f"host {host}: cannot connect ({_reason(err)})") from None
        return slot.connection

    async def _run(self, slot: _Slot, number: int, job: Job, log: LogFile) -> Result:
        asyncssh = _asyncssh()

        started = time.monotonic()
        remote = f"/tmp/alamode-job-{uuid.uuid4().hex}"  # made private to the user: 0700
        try:
            connection = await self._connect(slot)
            sftp = slot.sftp
            await sftp.mkdir(remote, asyncssh.SFTPAttrs(permissions=0o700))
        except (EngineError, asyncssh.Error, OSError) as err:
            raise _Lost(_reason(err)) from None
        try:
            await _upload(sftp, job, remote)
            result = await self._command(slot, number, connection, job, remote, log)
            if result.ok:
                await _download(sftp, f"{remote}/out", job.output_dir)
            return result._replace(seconds=time.monotonic() - started)
        except (asyncssh.Error, OSError) as err:
            raise _Lost(_reason(err)) from None
        finally:
            with contextlib.suppress(Exception):
                await _remove(sftp, job, remote)

    async def _command(
        self, slot: _Slot, number: int, connection: Any, job: Job, remote: str, log: LogFile
    ) -> Result:
        """Start the command in its own session on the host, stream its output into the
        log, and wait for it (or its time limit)."""
        import asyncssh

        inputs = {name: f"{remote}/in/{name}" for name in job.inputs}
        env = {**job.env, **task_environment(job.task, job.output_id, f"{remote}/out", inputs)}
        argv = ["/bin/sh", "-c", job.command] if isinstance(job.command, str) else job.command
        here = f"{remote}/files" if job.workdir else remote
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        # sshd starts the command as the leader of a new session: its pid is its group's,
        # and its first line of output, before the command's own.
        line = f"echo $$; cd {shlex.quote(here)} && exec env {assignments} {shlex.join(argv)}"
        started = time.monotonic()
        process = await connection.create_process(line, stderr=asyncssh.STDOUT, encoding=None)
        pid = (await process.stdout.readline()).decode().strip()
        if not pid.isdigit():
            raise _Lost("the command did not start")
        self._running[number] = (slot, pid)
        if self._stopping:
            await _kill_group(slot, pid)

        async def copy() -> None:
            while data := await process.stdout.read(1 << 16):
                log.write(data)

        timed_out = False
        try:
            await asyncio.wait_for(copy(), job.timeout)
        except TimeoutError:
            timed_out = True
            log.write(f"\nalamode: timed out after {job.timeout} s; stopping it\n".encode())
            await _kill_group(slot, pid)
        ended = await process.wait()
        seconds = time.monotonic() - started
        if ended.exit_signal:
            signal_name = ended.exit_signal[0]
            return Result(None, seconds, timed_out=timed_out, detail=f"killed by {signal_name}")
        if ended.exit_status is None or ended.exit_status < 0:
            raise _Lost("the command ended without an exit status")
        code = int(ended.exit_status)
        if code > 128 and (timed_out or self._stopping):
            return Result(None, seconds, signal=code - 128, timed_out=timed_out)
        return Result(code, seconds, timed_out=timed_out)


class _Lost(Exception):
    """The connection to a host failed during a job."""


def _reason(err: BaseException) -> str:
    return str(getattr(err, "reason", "") or err or type(err).__name__)


async def _kill_group(slot: _Slot, pid: str) -> None:
    if slot.connection is None:
        return
    """SIGTERM the remote command's group now, SIGKILL what is left a little later."""
    await slot.connection.run(
        f"kill -TERM -- -{pid} 2>/dev/null; "
        f"(sleep {GRACE_SECONDS}; kill -KILL -- -{pid} 2>/dev/null) >/dev/null 2>&1 &"
    )


async def _upload(sftp: Any, job: Job, remote: str) -> None:
    """Each input to ``in/<name>``, the listed files to ``files/``, and an empty ``out/``.
    The files' modes are kept (a listed script stays executable)."""
    await sftp.mkdir(f"{remote}/in")
    await sftp.mkdir(f"{remote}/out")
    for name, path in job.inputs.items():
        await sftp.put(path, f"{remote}/in/{name}", recurse=True)
    if job.workdir:
        await sftp.put(job.workdir, f"{remote}/files", recurse=True, preserve=True)


async def _remove(sftp: Any, job: Job, remote: str) -> None:
    """The job's folder on the host: its read-only folders of listed files made writable
    first, so that a user who is not root can remove them."""
    if job.workdir:
        for folder, _, _ in os.walk(job.workdir):
            relative = Path(folder).relative_to(job.workdir).as_posix()
            await sftp.chmod(posixpath.normpath(f"{remote}/files/{relative}"), 0o700)
    await sftp.rmtree(remote)


async def _download(sftp: Any, remote: str, local: str) -> None:
    """Everything in the remote folder, into the (existing, empty) local one."""
    for name in await sftp.listdir(remote):
        if name not in (".", ".."):
            await sftp.get(posixpath.join(remote, name), str(Path(local, name)), recurse=True)


def _asyncssh() -> Any:
    """asyncssh, imported without the warning newer ``cryptography`` releases print about
    its DSA support (a user cannot act on it, and it would break our one-line errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="asyncssh.*")
        import asyncssh

    return asyncssh
