"""What a run tells its caller: events as they happen, and a report at the end."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from a_la_mode.errors import AlamodeError
from a_la_mode.run.scheduler import Scheduler


class RunInterrupted(AlamodeError):
    """Ctrl-C: running tasks were stopped and nothing half-done was recorded."""

    exit_code = 130


class Event(NamedTuple):
    """Something the user may want to see: ``kind`` is start, skip, wait, succeed, fail,
    retry, adopt or finish. ``detail`` is the reason, in words."""

    kind: str
    task: str = ""
    output: str = ""
    detail: str = ""
    seconds: float | None = None
    attempt: int | None = None
    log: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.kind, "time": round(time.time(), 3)}
        for key in ("task", "output", "detail", "log"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.seconds is not None:
            data["seconds"] = round(self.seconds, 3)
        if self.attempt is not None:
            data["attempt"] = self.attempt
        return data


class RunReport(NamedTuple):
    run: int
    scheduler: Scheduler
    seconds: float
