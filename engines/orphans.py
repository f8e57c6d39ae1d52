"""Commands left running by a local runner that was killed (``kill -9``), found and ended.

Each command the local engine starts carries ``ALAMODE_RUNNER=<pid>-<start ticks>`` of its
runner in its environment (inherited by everything it starts). A later runner looks through
``/proc`` for processes whose runner is gone and kills their process groups, before it runs
anything: otherwise the orphan and the rerun of its task would run side by side.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from a_la_mode.run.processes import runner_tag, tag_alive

RUNNER_VARIABLE = "ALAMODE_RUNNER"
GONE_SECONDS = 5.0  # how long killed processes may take to be gone


def this_runner() -> dict[str, str]:
    """The variable that marks the commands this process starts."""
    return {RUNNER_VARIABLE: runner_tag()}


def end_orphans() -> list[int]:
    """Kill the process group of every process of this user started by a runner that is
    no longer alive, and wait until they are gone; returns the groups killed."""
    marker = f"\0{RUNNER_VARIABLE}=".encode()
    groups: set[int] = set()
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
        except OSError:  # gone, or another user's
            continue
        at = environ.find(marker)
        if at < 0:
            continue
        tag = environ[at + len(marker) :].split(b"\0", 1)[0].decode(errors="replace")
        if tag_alive(tag) is False:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
    for group in groups:
        kill_group(group)
    return sorted(groups)


def kill_group(group: int) -> None:
    """SIGKILL process group ``group`` and wait until no live member is left (a process
    killed in the middle of a write finishes that write first)."""
    deadline = time.monotonic() + GONE_SECONDS
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    while time.monotonic() < deadline and live_members(group):
        time.sleep(0.002)


def live_members(group: int) -> bool:
    """Whether process group ``group`` has a member that is not a zombie (a zombie waits
    only for its parent to reap it, and writes nothing)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != b"Z":
            return True
    return False


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc here: nothing can be found
        return []
