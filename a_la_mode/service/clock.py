"""The service's clock: every few seconds, start the runs of the schedules that are due
(schedules.py says what "due" means), and record how each slot ended."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from a_la_mode.errors import AlamodeError
from a_la_mode.service.runs import RunManager, ServiceRun
from a_la_mode.service.schedules import MISSED_WHY, Schedule, ScheduleBook, Slot, due_slots

OUTCOMES = {"succeeded": "succeeded", "failed": "failed", "interrupted": "interrupted"}


class Clock:
    """Runs due schedules through ``manager``; ``plan_file`` finds a plan's file."""

    def __init__(
        self,
        book: ScheduleBook,
        manager: RunManager,
        plan_file: Callable[[str], str],
        missed: str = "once",
        every: float = 10.0,
    ) -> None:
        self.book, self.manager, self.plan_file = book, manager, plan_file
        self.missed, self.every = missed, every
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="alamode-clock", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.tick()
            self.stopping.wait(self.every)

    def tick(self, now: float | None = None) -> list[Slot]:
        """Handle every due slot once; returns what was recorded. A schedule that fails
        (its file broken meanwhile, its plan gone) is reported and skipped: the others go
        on."""
        now = time.time() if now is None else now
        recorded: list[Slot] = []
        for schedule in self.book.all():
            try:
                recorded.extend(self._handle(schedule, now))
            except AlamodeError as err:
                print(f"alamode serve: schedule {schedule.name}: {err}", file=sys.stderr)
        return recorded

    def _handle(self, schedule: Schedule, now: float) -> list[Slot]:
        if any(s.at > now and s.detail == MISSED_WHY for s in schedule.slots):
            self.book.forget_future_skips(schedule.name, now)  # the clock went back
            schedule = self.book.get(schedule.name)
        at, missed = due_slots(schedule, now, self.missed)
        version = schedule.current
        skipped = [
            Slot(at=slot, plan=version.plan, outcome="skipped", detail=MISSED_WHY)
            for slot in missed
            if self.book.claim(schedule.name, slot)
        ]
        if skipped:
            self.book.record(schedule.name, *skipped)
        if at is None or not self.book.claim(schedule.name, at):
            return skipped  # nothing due, or another service has it
        going = self.manager.running(version.plan)
        if going is not None:
            slot = Slot(
                at=at, plan=version.plan, outcome="skipped", run=going.id,
                detail=f"the run of an earlier slot ({going.id}) was still going",
            )  # fmt: skip
            self.book.record(schedule.name, slot)
        else:
            plan_file = self.plan_file(version.plan)
            run = self.manager.start(version.plan, plan_file, [], version.engine)
            slot = Slot(at=at, plan=version.plan, outcome="started", run=run.id)
            self.book.record(schedule.name, slot)  # before its end can be recorded
            self._on_end(schedule.name, slot, run)
        return [*skipped, slot]

    def _on_end(self, name: str, slot: Slot, run: ServiceRun) -> None:
        def ended(finished: ServiceRun) -> None:
            outcome = OUTCOMES.get(finished.status, "failed")
            detail = finished.errors.splitlines()[-1] if finished.errors else ""
            self.book.record(name, slot.model_copy(update={"outcome": outcome, "detail": detail}))

        run.finished_callbacks.append(ended)
        if run.status != "running":  # it ended before the callback was in place
            ended(run)
