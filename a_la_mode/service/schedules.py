"""Schedules: which plan is the active version of each pipeline, on what schedule, and what
happened on its last slots. Kept as one JSON file per pipeline under ``schedules/`` in the
store's folder (the cache's, for a blob store), written atomically.

Times are UTC, always: cron expressions are read in UTC and times are shown in UTC.

- Activating a plan appends a version and makes it the active one; earlier versions stay in
  the file (and their plans in the store), so the history of every version is kept.
- A slot is due when the schedule's most recent slot is later than the last slot handled.
  After the service was down, only the most recent missed slot runs (``missed="once"``), or
  none (``"skip"``): never one run per missed slot.
- A slot that comes while the previous run is still going is not run twice: it is recorded
  as skipped, and the next slot runs as usual.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from a_la_mode.errors import AlamodeError

TIME_ZONE = "UTC"
MISSED = ("once", "skip")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ScheduleError(AlamodeError):
    """A schedule cannot be activated or found."""


class Version(BaseModel):
    """One activation: this plan, on this schedule, from then on."""

    plan: str
    schedule: str
    engine: str = "local"
    activated: float = Field(default_factory=time.time)


class Slot(BaseModel):
    """What happened at one scheduled time."""

    at: float  # the slot's time
    plan: str
    outcome: Literal["started", "succeeded", "failed", "interrupted", "skipped"]
    detail: str = ""
    run: str = ""  # the service's run, if one was started


class Schedule(BaseModel):
    name: str
    active: bool = True
    versions: list[Version] = []
    slots: list[Slot] = []  # newest last; the last ones only

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def next_run(self, now: float | None = None) -> float | None:
        """The next slot after ``now``, or None when not active."""
        if not self.active:
            return None
        return next_slot(self.current.schedule, now if now is not None else time.time())

    def last(self) -> Slot | None:
        return self.slots[-1] if self.slots else None


def check_schedule(expression: str) -> str:
    """A cron expression (five fields) or a preset (@hourly, @daily, @weekly, @monthly,
    @yearly); one line otherwise."""
    from croniter import croniter

    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ScheduleError(
            f"schedule {expression!r} is not a cron expression: use five fields such as "
            "'0 6 * * *', or @hourly, @daily, @weekly, @monthly"
        )
    return expression


def next_slot(expression: str, after: float) -> float:
    from croniter import croniter

    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(expression, start).get_next(float))


def latest_slot(expression: str, now: float) -> float:
    """The most recent slot at or before ``now``."""
    from croniter import croniter

    start = datetime.fromtimestamp(now + 1e-3, UTC)
    return float(croniter(expression, start).get_prev(float))


def due_slot(schedule: Schedule, now: float, missed: str = "once") -> float | None:
    """The slot to handle now, if any. A slot is never handled twice; of several missed
    slots, only the latest is (``once``), or none but those within a minute (``skip``)."""
    if not schedule.active or not schedule.versions:
        return None
    version = schedule.current
    slot = latest_slot(version.schedule, now)
    handled = max((s.at for s in schedule.slots), default=version.activated)
    if slot <= max(handled, version.activated):
        return None  # nothing new since the last slot handled, or since activation
    if missed == "skip" and now - slot > 60:
        return None
    return slot


def check_name(name: str) -> str:
    """A pipeline's name, as a schedule's file is named; one line otherwise."""
    if not NAME.match(name):
        raise ScheduleError(
            f"{name!r} cannot name a pipeline: use letters, digits, '.', '_' and '-'"
        )
    return name


class ScheduleBook:
    """The schedules of one store."""

    KEEP_SLOTS = 200

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / "schedules"

    def _path(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.json"

    def get(self, name: str) -> Schedule:
        path = self._path(name)
        if not path.exists():
            known = ", ".join(s.name for s in self.all()) or "none"
            raise ScheduleError(f"no schedule named {name!r} (active or not: {known})")
        return Schedule.model_validate_json(path.read_text())

    def all(self) -> list[Schedule]:
        if not self.folder.is_dir():
            return []
        return [
            Schedule.model_validate_json(path.read_text())
            for path in sorted(self.folder.glob("*.json"))
        ]

    def save(self, schedule: Schedule) -> None:
        schedule.slots = schedule.slots[-self.KEEP_SLOTS :]
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(schedule.model_dump(), indent=1).encode()
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        with os.fdopen(handle, "wb") as writer:
            writer.write(data)
        os.replace(temporary, self._path(schedule.name))

    def activate(self, name: str, plan: str, expression: str, engine: str) -> Schedule:
        """Make ``plan`` the active version of ``name``; earlier versions are kept."""
        check_schedule(expression)
        path = self._path(name)
        schedule = (
            Schedule.model_validate_json(path.read_text()) if path.exists() else Schedule(name=name)
        )
        schedule.versions.append(Version(plan=plan, schedule=expression, engine=engine))
        schedule.active = True
        self.save(schedule)
        return schedule

    def deactivate(self, name: str) -> Schedule:
        schedule = self.get(name)
        schedule.active = False
        self.save(schedule)
        return schedule

    def record(self, name: str, slot: Slot) -> None:
        """Add or update (by time) what happened at a slot."""
        schedule = self.get(name)
        schedule.slots = [s for s in schedule.slots if s.at != slot.at] + [slot]
        schedule.slots.sort(key=lambda s: s.at)
        self.save(schedule)


def describe(schedule: Schedule, now: float | None = None) -> dict[str, Any]:
    """A schedule as ``alamode schedules --json`` and ``/api/schedules`` show it."""
    last = schedule.last()
    upcoming = schedule.next_run(now)
    return {
        "name": schedule.name,
        "active": schedule.active,
        "schedule": schedule.current.schedule if schedule.versions else "",
        "plan": schedule.current.plan if schedule.versions else "",
        "engine": schedule.current.engine if schedule.versions else "",
        "versions": len(schedule.versions),
        "next_run": iso(upcoming) if upcoming else None,
        "last": None if last is None else {**last.model_dump(), "at": iso(last.at)},
        "time_zone": TIME_ZONE,
    }


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
