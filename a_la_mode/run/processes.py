"""Whether a process of this host is still the one that wrote something: pids are reused,
so a pid alone is not enough; its start time (from /proc) tells two processes apart.

Files a runner leaves in the store (staging directories, journals) carry its *tag* in their
names, ``<pid>-<start ticks>``; rows in the database carry its pid and a time it wrote them.
"""

from __future__ import annotations

import os
import time

# How much later than a record its writer may seem to have started (the wall clock may have
# been stepped since) before the record counts as another process's, its pid reused.
CLOCK_SLACK_SECONDS = 60.0


def pid_alive(pid: int, since: float | None = None) -> bool:
    """Whether the process ``pid`` of this host that wrote something at ``since`` (Unix time)
    is still running. A process with that pid which started after ``since`` is another one,
    the pid reused: the writer is gone. Without ``since``, any process with that pid counts."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if since is None:
        return True
    started = start_time(pid)
    return started is None or started <= since + CLOCK_SLACK_SECONDS


def start_time(pid: int) -> float | None:
    """When process ``pid`` started (Unix time); None where that is unknown."""
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return booted + ticks / os.sysconf("SC_CLK_TCK")


def start_ticks(pid: int) -> int | None:
    """Process ``pid``'s start in clock ticks after boot (field 22 of /proc/<pid>/stat): the
    same number for as long as that process lives. None if there is no such process here."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()  # the name may hold ") "
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def runner_tag() -> str:
    """This process as ``<pid>-<start ticks>`` (just ``<pid>`` where /proc is missing)."""
    pid = os.getpid()
    ticks = start_ticks(pid)
    return str(pid) if ticks is None else f"{pid}-{ticks}"


def tag_alive(tag: str) -> bool | None:
    """Whether the process a ``runner_tag`` names still runs: the same pid *and* start. A bare
    pid (older names) is judged by the pid alone. None if ``tag`` is not a tag."""
    pid, _, ticks = tag.partition("-")
    if not pid.isdigit() or not (ticks.isdigit() or not ticks):
        return None
    if not ticks:
        return pid_alive(int(pid))
    return start_ticks(int(pid)) == int(ticks)
