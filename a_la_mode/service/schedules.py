"""Schedules: which plan is the active version of each pipeline, on what schedule, and what
happened on its last slots. Kept as one JSON file per pipeline under ``schedules/`` in the
store's folder (the cache's, for a blob store), written atomically.

Times are UTC, always: cron expressions are read in UTC and times are shown in UTC.

- Activating a plan appends a version and makes it the active one; earlier versions stay in
  the file (and their plans in the store), so the history of every version is kept.
- A slot is due once its time has come and it has not been handled. After the service was
  down, or the clock jumped forward, only the most recent missed slot runs
  (``missed="once"``), or none (``"skip"``): never one run per missed slot; each missed
  slot is recorded as skipped, with the reason. If the clock then goes back, the slots it
  had skipped as missed that are in the future again are forgotten, to run when due.
- A slot is claimed before it is handled, by a file created only if it does not exist
  (``claims/<pipeline>/<slot>``): of several services on one store, exactly one handles it.
- A slot that comes while the previous run is still going is not run twice: it is recorded
  as skipped, and the next slot runs as usual.
- A schedule file that cannot be read is reported (``broken``) and skipped; the others go on.
- Schedules fire only while ``alamode serve`` runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from a_la_mode.errors import AlamodeError

TIME_ZONE = "UTC"
MISSED = ("once", "skip")
MISSED_WHY = "missed (the service was not running, or the clock jumped)"
CLAIMS_KEPT_SECONDS = 7 * 86400
MAX_MISSED_RECORDED = 50  # of a long outage, the latest missed slots are recorded one by one
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


def due_slots(
    schedule: Schedule, now: float, missed: str = "once"
) -> tuple[float | None, list[float]]:
    """The slot to run now, if any, and the slots missed before it, which are skipped: not
    handled yet, their time come, after activation. Of several, only the latest runs
    (``once``), or none but one within a minute (``skip``)."""
    if not schedule.active or not schedule.versions:
        return None, []
    version = schedule.current
    handled = {s.at for s in schedule.slots}
    since = max([version.activated, *(at for at in handled if at <= now)])
    slots: list[float] = []
    slot = latest_slot(version.schedule, now)
    while slot > since and len(slots) <= MAX_MISSED_RECORDED:
        if slot not in handled:
            slots.append(slot)
        slot = previous_slot(version.schedule, slot)
    if not slots:
        return None, []
    latest, earlier = slots[0], slots[1:]
    if missed == "skip" and now - latest > 60:
        return None, slots
    return latest, earlier


def previous_slot(expression: str, before: float) -> float:
    from croniter import croniter

    return float(croniter(expression, datetime.fromtimestamp(before, UTC)).get_prev(float))


def forget_future_skips(schedule: Schedule, now: float) -> list[float]:
    """The clock went back: slots skipped as missed that are in the future again are
    forgotten (they were never missed), so they run when due. The slots forgotten."""
    future = [s.at for s in schedule.slots if s.at > now and s.detail == MISSED_WHY]
    schedule.slots = [s for s in schedule.slots if s.at not in future]
    return future


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
        return self._read(path)

    def all(self) -> list[Schedule]:
        """The schedules that can be read (``broken`` says which cannot)."""
        return self.load()[0]

    def broken(self) -> list[dict[str, str]]:
        """The schedule files that cannot be read: file and reason, for the page and CLI."""
        return self.load()[1]

    def load(self) -> tuple[list[Schedule], list[dict[str, str]]]:
        """Every schedule, and every file that is not one (each skipped, not fatal)."""
        if not self.folder.is_dir():
            return [], []
        good, bad = [], []
        for path in sorted(self.folder.glob("*.json")):
            try:
                good.append(self._read(path))
            except ScheduleError as err:
                bad.append({"file": str(path), "reason": str(err)})
        return good, bad

    @staticmethod
    def _read(path: Path) -> Schedule:
        try:
            return Schedule.model_validate_json(path.read_bytes())
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise ScheduleError(
                f"schedule file {path} cannot be read ({where}: {first['msg']}); fix it, "
                "or deactivate and activate the pipeline again"
            ) from None
        except OSError as err:
            raise ScheduleError(f"schedule file {path} cannot be read: {err.strerror}") from None

    def save(self, schedule: Schedule) -> None:
        schedule.slots = schedule.slots[-self.KEEP_SLOTS :]
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(schedule.model_dump(), indent=1).encode()
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        with os.fdopen(handle, "wb") as writer:
            writer.write(data)
        os.replace(temporary, self._path(schedule.name))

    @contextlib.contextmanager
    def changing(self, name: str) -> Iterator[None]:
        """Hold the pipeline's lock while its file is read, changed and written: services
        on one store record their slots without losing each other's."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f".{check_name(name)}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def claim(self, name: str, at: float) -> bool:
        """Claim the slot ``at`` of ``name`` for this service: True for exactly one claimer,
        here or in another process (the claim is a file created only if it is absent)."""
        folder = self._claims(name)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(folder / f"{int(at)}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        for old in os.scandir(folder):  # a week of claims is kept: slots that old are done
            if old.name.isdigit() and int(old.name) < at - CLAIMS_KEPT_SECONDS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old.path)
        return True

    def _claims(self, name: str) -> Path:
        return self.folder / "claims" / check_name(name)

    def activate(self, name: str, plan: str, expression: str, engine: str) -> Schedule:
        """Make ``plan`` the active version of ``name``; earlier versions are kept."""
        check_schedule(expression)
        path = self._path(name)
        with self.changing(name):
            schedule = self._read(path) if path.exists() else Schedule(name=name)
            schedule.versions.append(Version(plan=plan, schedule=expression, engine=engine))
            schedule.active = True
            self.save(schedule)
        return schedule

    def deactivate(self, name: str) -> Schedule:
        with self.changing(name):
            schedule = self.get(name)
            schedule.active = False
            self.save(schedule)
        return schedule

    def record(self, name: str, *slots: Slot) -> None:
        """Add or update (by time) what happened at some slots."""
        with self.changing(name):
            schedule = self.get(name)
            times = {slot.at for slot in slots}
            schedule.slots = [s for s in schedule.slots if s.at not in times] + list(slots)
            schedule.slots.sort(key=lambda s: s.at)
            self.save(schedule)

    def forget_future_skips(self, name: str, now: float) -> None:
        """The clock went back: see ``forget_future_skips``."""
        with self.changing(name):
            schedule = self.get(name)
            forgotten = forget_future_skips(schedule, now)
            if forgotten:
                self.save(schedule)
            for at in forgotten:  # their claims go too, or they could never be claimed
                (self._claims(name) / f"{int(at)}").unlink(missing_ok=True)


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
