"""What is wanted, ready, running, done or failed, and why: pure state, no processes.

The runner asks ``next_ready()`` for work and reports back with ``finished()``; tests drive
it with no I/O at all (ninja's Plan/Builder split). Among ready tasks the one heading the
longest remaining path, weighted by recorded durations, starts first (mara's cost-based
queue); equal costs fall back to plan order. Every state carries a short reason.
"""

from __future__ import annotations

import collections
import heapq
import operator
import statistics
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from a_la_mode.compile.naming import base_name, did_you_mean
from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError

DEFAULT_SECONDS = 1.0  # the cost of a task that has never run, when nothing else is known


class State(StrEnum):
    DONE = "done"  # success recorded before this run
    WAITING = "waiting"  # some dependency is not done yet
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # produced in this run (or by a concurrent one)
    FAILED = "failed"
    BLOCKED = "blocked"  # an upstream task failed
    STOPPED = "stopped"  # never started: the run stopped after a failure


_STATE_OF = operator.attrgetter("state")


class TaskStatus(NamedTuple):
    """Where a task stands in this run, and why, in words. Immutable: tasks done before the
    run share one, ``DONE_BEFORE``."""

    state: State
    reason: str


# The state of every task done before the run; its output ID completes the reason.
DONE_BEFORE = TaskStatus(State.DONE, "success recorded")


def short(output_id: str) -> str:
    return output_id[:12] + "…"


def done_reason(output_id: str) -> str:
    """Why a task done before the run is done, as ``status`` and the skip event say it."""
    return f"{DONE_BEFORE.reason} for {short(output_id)}"


def closure(plan: PlanBase, targets: Iterable[str]) -> list[str]:
    """The targets and everything upstream of them, in plan order. A target names a task, or
    every instance of it (``fetch`` for ``fetch[day=...]``). Unknown names are refused."""
    wanted: set[str] = set()
    stack = []
    instances: dict[str, list[str]] | None = None
    for target in targets:
        if target in plan.tasks:
            stack.append(target)
            continue
        if instances is None:
            instances = {}
            for name in plan.tasks:
                if "[" in name:
                    instances.setdefault(base_name(name), []).append(name)
        if target not in instances:
            raise AlamodeError(
                f"unknown target {target!r}{did_you_mean(target, plan.tasks)}; "
                "'alamode show' lists the tasks"
            )
        stack.extend(instances[target])
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            stack.extend(plan.inputs(name))
    return [name for name in plan.toposort_flatten if name in wanted]


def wanted(plan: PlanBase, targets: Iterable[str] | None) -> list[str]:
    """The tasks a run wants, in plan order: all of them, or the targets' upstream closure."""
    return list(plan.toposort_flatten) if targets is None else closure(plan, targets)


class Scheduler:
    """The state of one run over ``plan``."""

    def __init__(
        self,
        plan: PlanBase,
        done_outputs: set[str],
        targets: Iterable[str] | None = None,
        durations: dict[str, float] | None = None,
        keep_going: bool = False,
    ) -> None:
        self.plan = plan
        self.keep_going = keep_going
        self.order = wanted(plan, targets)
        # Tasks done before the run get their (shared) state and nothing else: a no-op run
        # over 100,000 tasks does no more per task than this.
        self.status: dict[str, TaskStatus] = dict.fromkeys(self.order, DONE_BEFORE)
        self._dependents: dict[str, list[str]] = {}  # among tasks not done before the run
        self._missing: dict[str, int] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._position: dict[str, int] = {}  # plan order of each task to run, for ties
        self._producers: dict[str, str] = {}  # output ID -> the task producing it now
        self._twins: dict[str, list[str]] = {}  # output ID -> tasks waiting on that producer
        # Claiming ahead: a waiting task whose upstream is all handed out may be claimed
        # before it is ready, so that one transaction claims a batch of a chain or lattice.
        self._unsettled: dict[str, int] = {}  # deps not yet handed out nor claimed ahead
        self._credited: set[str] = set()  # tasks their dependents count as handed out
        self._ahead: list[tuple[float, int, str]] = []  # candidates, in priority order
        self._taken_ahead: set[str] = set()
        self.stopped = False
        self.stop_reason = "not started: the run stopped first"
        tasks = plan.tasks
        # the tasks to run, in plan order
        self.pending = [name for name in self.order if tasks[name]["output"] not in done_outputs]
        pending = self.pending
        if pending:
            to_run = set(pending)
            self._position = {name: i for i, name in enumerate(self.order) if name in to_run}
        for name in pending:
            for dep in tasks[name]["inputs"]:
                if tasks[dep]["output"] not in done_outputs:
                    self._dependents.setdefault(dep, []).append(name)
        self.cost = self._costs(pending, durations or {})
        producers: dict[str, int] = {}
        for name in pending:
            producers[tasks[name]["output"]] = producers.get(tasks[name]["output"], 0) + 1
        self._shared = {output for output, count in producers.items() if count > 1}
        for name in pending:
            waiting = [
                dep for dep in tasks[name]["inputs"] if tasks[dep]["output"] not in done_outputs
            ]
            self._missing[name] = self._unsettled[name] = len(waiting)
            if waiting:
                self.status[name] = TaskStatus(State.WAITING, f"upstream {waiting[0]} will run")
            else:
                self._make_ready(name)

    def _costs(self, pending: list[str], durations: dict[str, float]) -> dict[str, float]:
        """Longest remaining path from each task to run, weighted by recorded durations."""
        known = [durations[n] for n in pending if n in durations]
        default = statistics.median(known) if known else DEFAULT_SECONDS
        cost: dict[str, float] = {}
        for name in reversed(pending):
            below = max((cost[child] for child in self._dependents.get(name, ())), default=0.0)
            cost[name] = durations.get(name, default) + below
        return cost

    def _make_ready(self, name: str) -> None:
        self.status[name] = TaskStatus(
            State.READY, f"no success recorded for {short(self.plan.output(name))}"
        )
        heapq.heappush(self._heap, (-self.cost[name], self._position[name], name))

    # -- the runner's side -------------------------------------------------------------

    def next_ready(self) -> str | None:
        """The ready task to start now, or None. Marks it running."""
        while self._heap and not self.stopped:
            _, _, name = heapq.heappop(self._heap)
            if self.status[name].state is not State.READY:
                continue
            output = self.plan.output(name)
            producer = self._producers.get(output)
            if producer is not None:  # identical task already running: wait for its result
                self._twins.setdefault(output, []).append(name)
                self.status[name] = TaskStatus(State.RUNNING, f"same output as {producer}")
                continue
            self._producers[output] = name
            self.status[name] = TaskStatus(State.RUNNING, "started")
            self._credit(name)
            return name
        return None

    def next_ahead(self) -> str | None:
        """A waiting task to claim before it is ready, or None: every task upstream of it
        has been handed out by ``next_ready`` or claimed ahead itself, and no other task
        makes its output. It stays waiting; ``next_ready`` hands it out once it is ready."""
        while self._ahead and not self.stopped:
            _, _, name = heapq.heappop(self._ahead)
            if self.status[name].state is State.WAITING and name not in self._taken_ahead:
                self._taken_ahead.add(name)
                self._credit(name)
                return name
        return None

    def _credit(self, name: str) -> None:
        """``name`` is handed out or claimed ahead: a dependent with nothing else unsettled
        upstream becomes a candidate for claiming ahead."""
        if name in self._credited:
            return
        self._credited.add(name)
        for child in self._dependents.get(name, ()):
            left = self._unsettled.get(child)
            if left is None:
                continue  # done before this run
            self._unsettled[child] = left - 1
            if left == 1 and self.plan.output(child) not in self._shared:
                heapq.heappush(self._ahead, (-self.cost[child], self._position[child], child))

    def requeue(self, name: str, reason: str) -> None:
        """Put a running task back (a retry, or its output is leased by another runner)."""
        self._producers.pop(self.plan.output(name), None)
        self._make_ready(name)
        self.status[name] = TaskStatus(State.READY, reason)

    def withdraw(self, name: str) -> None:
        """A task handed out by ``next_ready`` that never started, because the run stopped
        first: it (and any identical task waiting on it) is stopped, not failed."""
        output = self.plan.output(name)
        self._producers.pop(output, None)
        for task in (name, *self._twins.pop(output, [])):
            self.status[task] = TaskStatus(State.STOPPED, self.stop_reason)

    def finished(self, name: str, ok: bool, reason: str) -> None:
        """Record the end of ``name`` (and of identical tasks waiting on it)."""
        output = self.plan.output(name)
        self._producers.pop(output, None)
        twins = self._twins.pop(output, [])
        if not ok:
            self.status[name] = TaskStatus(State.FAILED, reason)
            for twin in twins:
                self.status[twin] = TaskStatus(State.FAILED, f"same output as {name}, which failed")
            for failed in (name, *twins):
                self._block_downstream(failed)
            if not self.keep_going:
                self.stopped = True
                self.stop_reason = f"not started: the run stopped after {name} failed"
                for other in self.order:
                    if self.status[other].state in (State.READY, State.WAITING):
                        self.status[other] = TaskStatus(State.STOPPED, self.stop_reason)
            return
        self.status[name] = TaskStatus(State.SUCCEEDED, reason)
        for twin in twins:
            self.status[twin] = TaskStatus(State.SUCCEEDED, f"same output as {name}")
        for finished in (name, *twins):
            for child in self._dependents.get(finished, ()):
                if child not in self._missing:
                    continue  # already done before this run (a re-made input, same ID)
                self._missing[child] -= 1
                if self._missing[child] == 0 and self.status[child].state is State.WAITING:
                    self._make_ready(child)

    def _block_downstream(self, failed: str) -> None:
        stack = list(self._dependents.get(failed, ()))
        while stack:
            child = stack.pop()
            if self.status[child].state in (State.WAITING, State.READY):
                self.status[child] = TaskStatus(State.BLOCKED, f"upstream {failed} failed")
                stack.extend(self._dependents.get(child, ()))

    @property
    def running(self) -> list[str]:
        return [n for n in self.order if self.status[n].state is State.RUNNING]

    def is_over(self) -> bool:
        """Nothing is running and nothing more can start."""
        if self.running:
            return False
        return self.stopped or not any(self.status[n].state is State.READY for n in self.order)

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, by the state's name."""
        tally = collections.Counter(map(_STATE_OF, self.status.values()))
        return {state.value: tally[state] for state in State}

    @property
    def succeeded(self) -> bool:
        """Every wanted task is done or succeeded."""
        counts = self.counts()
        return counts[State.DONE] + counts[State.SUCCEEDED] == len(self.status)

    def simulate(self) -> list[str]:
        """The order tasks would start in if every one succeeded (``--dry-run``)."""
        started = []
        while (name := self.next_ready()) is not None:
            started.append(name)
            self.finished(name, True, "would run")
        return started
