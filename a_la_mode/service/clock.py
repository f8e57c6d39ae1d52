"""The service's clock: every few seconds, start the runs of the schedules that are due
(schedules.py says what "due" means), and record how each slot ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from a_la_mode.service.runs import RunManager, ServiceRun
from a_la_mode.service.schedules import ScheduleBook, Slot, due_slot

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
        """Handle every due slot once; returns what was recorded."""
        now = time.time() if now is None else now
        recorded = []
        for schedule in self.book.all():
            at = due_slot(schedule, now, self.missed)
            if at is None:
                continue
            version = schedule.current
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
            recorded.append(slot)
        return recorded

    def _on_end(self, name: str, slot: Slot, run: ServiceRun) -> None:
        def ended(finished: ServiceRun) -> None:
            outcome = OUTCOMES.get(finished.status, "failed")
            detail = finished.errors.splitlines()[-1] if finished.errors else ""
            self.book.record(name, slot.model_copy(update={"outcome": outcome, "detail": detail}))

        run.finished_callbacks.append(ended)
        if run.status != "running":  # it ended before the callback was in place
            ended(run)
