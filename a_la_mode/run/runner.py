"""Run a plan: the I/O around the scheduler. Leases, staging, the engine, publishing, records.

All database work happens on this (the main) thread; worker threads only run commands and
publish files. The success protocol, in order: stage, run, fsync and manifest, rename into
``outputs/``, then record success. A failure, a signal, a timeout or Ctrl-C leaves no success
record and no published output.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path

from a_la_mode.compile.bulk import paused_gc
from a_la_mode.compile.planfile import PlanBase
from a_la_mode.run.artifacts import artifact_of, artifact_states, removable, remove
from a_la_mode.run.commits import GroupCommit
from a_la_mode.run.dispatch import Notice, Outcome, dispatcher_for
from a_la_mode.run.engine import (
    Engine,
    Job,
    LogFile,
    PollingEngine,
    RemoteStore,
    Result,
)
from a_la_mode.run.events import Event, RunInterrupted, RunReport
from a_la_mode.run.inputguard import InputChanged
from a_la_mode.run.options import RunOptions, check_engine_keys, forced
from a_la_mode.run.placement import placed, remote_settings
from a_la_mode.run.pyfunction import runs_something
from a_la_mode.run.scheduler import DONE_BEFORE, Scheduler, State, done_reason, wanted
from a_la_mode.run.steps import AttemptSteps, InputUnavailable, StoreSteps, discard
from a_la_mode.run.untrusted import Untrusted
from a_la_mode.run.workdir import FilesChanged, workdir_path
from a_la_mode.store.contract import Store
from a_la_mode.store.manifest import Manifest
from a_la_mode.store.records import Lease, Refusal, Success

LEASE_POLL_SECONDS = 0.2
CLAIM_WINDOW_SECONDS = 0.02  # a claim batch holds about this much work for each worker
MAX_CLAIM_BATCH = 64
ADOPTED = "published by an interrupted run; kept"


class _Attempt:
    """A task claimed by this run; ``started`` once a worker has begun it."""

    __slots__ = ("job", "name", "number", "row", "started")

    def __init__(self, name: str, row: int, number: int, job: Job) -> None:
        self.name, self.row, self.number = name, row, number
        self.job = job  # its output_dir is the attempt's staging directory
        self.started = False


def run_plan(
    plan: PlanBase,
    store: Store,
    engine: Engine,
    options: RunOptions,
    emit: Callable[[Event], None],
) -> RunReport:
    """Run every wanted task of ``plan`` that has no recorded success."""
    started = time.monotonic()
    remote = remote_settings(store, engine)  # before anything is written to the store
    names = wanted(plan, options.targets)
    adopted = store.recovery.adopt_orphans()  # published by a runner killed before recording them
    store.recovery.settle_dead_runs()  # and what else it had begun is marked killed in the history
    again = {plan.output(name) for name in forced(plan, names, options)}
    present, absent = artifact_states(plan, names)  # an artifact is the truth for its task
    again |= {plan.output(name) for name in absent}
    store.outputs.replacing = frozenset(again)
    with paused_gc():  # a state per task, in bulk: no collector passes over them meanwhile
        done = store.outputs.successes([plan.tasks[name]["output"] for name in names]) - again
        done |= {plan.output(name) for name in present}
        scheduler = Scheduler(
            plan, done, options.targets, store.ledger.durations(), options.keep_going
        )
    to_run = scheduler.pending
    check_engine_keys(plan, to_run)
    engine.check()
    if hasattr(engine, "parallelism"):
        jobs = engine.parallelism(options.jobs)
    else:
        jobs = options.jobs or os.cpu_count() or 1
    engine.prepare({n: plan.spec(n) for n in to_run if runs_something(plan.tasks[n])})
    store.recovery.clean_staging()  # after prepare: a killed runner's commands have been ended
    run = store.begin_run(plan, engine.name)
    status = "failed"
    runner: _Runner | None = None
    try:
        tasks, statuses = plan.tasks, scheduler.status
        # Each task done before says so (outputs adopted from a killed runner always do).
        with paused_gc():
            for name in scheduler.order if options.skip_events or adopted else ():
                if statuses[name] is not DONE_BEFORE:
                    continue
                output = tasks[name]["output"]
                if output in adopted:
                    emit(Event("adopt", name, output, ADOPTED))
                elif name in present:
                    emit(Event("skip", name, output, f"artifact exists: {artifact_of(plan, name)}"))
                elif options.skip_events:
                    emit(Event("skip", name, output, done_reason(output)))
        workers = None if remote is None else RemoteStore(*remote, plan.digest, run)
        runner = _Runner(
            plan, store, engine, scheduler, run, emit, jobs, options.files_root, workers
        )
        runner.loop()
        status = "succeeded" if scheduler.succeeded else "failed"
        finished = {
            n for n in scheduler.order if scheduler.status[n].state in (State.DONE, State.SUCCEEDED)
        }
        for name, location in removable(plan, scheduler.order, finished):
            remove(location)
            emit(Event("cleanup", name, plan.output(name), f"removed its artifact {location}"))
    except KeyboardInterrupt:
        status = "interrupted"
        if runner is not None:
            runner.interrupt()
        raise RunInterrupted(
            "interrupted: running tasks were stopped and nothing half-done was recorded"
        ) from None
    except BaseException:
        # Anything else (the event stream's reader went away, the disk filled up...): stop
        # as on Ctrl-C, so what was published is recorded and nothing is left half-done.
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.interrupt()
        raise
    finally:
        store.end_run(run, status)
    seconds = time.monotonic() - started
    emit(Event("finish", detail=status, seconds=seconds))
    return RunReport(run, scheduler, seconds)


class _Runner:
    """The main thread's loop. The dispatcher (dispatch.py) runs jobs on its threads and
    posts notices to ``inbox``: the main thread claims, records and emits; the dispatcher
    never waits for it. Up to ``jobs`` commands run at once, and as many more jobs wait
    claimed in the dispatcher's hands, so a worker that finishes starts the next at once."""

    def __init__(
        self,
        plan: PlanBase,
        store: Store,
        engine: Engine | PollingEngine,
        scheduler: Scheduler,
        run: int,
        emit: Callable[[Event], None],
        jobs: int,
        files_root: Path | None = None,
        remote: RemoteStore | None = None,
    ) -> None:
        self.plan, self.store, self.engine, self.scheduler = plan, store, engine, scheduler
        self.run, self.emit, self.jobs = run, emit, max(1, jobs)
        self.digest = plan.digest  # read once: a pydantic private attribute costs microseconds
        self.inbox: queue.SimpleQueue[Notice] = queue.SimpleQueue()
        self.reserved: collections.deque[_Attempt] = collections.deque()  # claimed, no worker yet
        self.ahead: dict[str, _Attempt] = {}  # claimed ahead: waiting on upstream, by task
        self.running: dict[int, _Attempt] = {}  # handed to a worker: queued or running, by row
        self.mean_seconds: float | None = None  # recent tasks' durations, a moving average
        self.deferred: dict[str, str] = {}  # task -> the runner holding its output's lease
        self.failures: dict[str, int] = {}
        self.untrusted = Untrusted(plan, store)  # inputs revoked or changed during the run
        self.commits = GroupCommit(
            store, lambda: self.inbox.put(("durable", 0, None)), self._refused
        )
        self.files_root = files_root
        self.remote = remote  # placement "store": workers fetch, run and publish there
        self.steps = (
            AttemptSteps(store, plan, files_root)
            if remote is None
            else StoreSteps(plan, files_root)
        )
        self.dispatcher = dispatcher_for(engine, self.steps, self.inbox, self.jobs, self._stops_run)

    def loop(self) -> None:
        while True:
            self._start_what_fits()
            if not self.running and not self.reserved and not self.deferred:
                break
            polling = self.deferred or self.commits.pending
            try:
                notice = self.inbox.get(timeout=LEASE_POLL_SECONDS if polling else None)
                while True:
                    self._handle(notice)
                    notice = self.inbox.get_nowait()
            except queue.Empty:
                pass
            self._recheck_deferred()
            self.commits.flush(force=False)
        self.commits.flush(force=True)
        self._stop_workers()

    def _handle(self, notice: Notice) -> None:
        kind, row, outcome = notice
        if kind == "started":
            attempt = self.running[row]
            attempt.started = True
            job = attempt.job
            self.emit(
                Event("start", job.task, job.output_id, attempt=attempt.number, log=job.log_path)
            )
        elif kind == "finished":
            assert outcome is not None
            self._collect(self.running.pop(row), outcome)
        elif kind == "withdrawn":  # never started: the run stopped after a failure
            self._withdraw([self.running.pop(row)])
        # "durable": a batch is durable; the group commit records it

    def _stops_run(self, job: Job, outcome: Outcome) -> bool:
        """On a dispatcher's thread: does this outcome end the run (fail fast)? A failure
        with no retry left, without --keep-going."""
        if self.scheduler.keep_going:
            return False
        if not isinstance(outcome, Exception) and outcome[1] is not None:
            return False
        retries: int = self.plan.tasks[job.task].get("retries", 0)
        return self.failures.get(job.task, 0) >= retries

    def _start_what_fits(self) -> None:
        """Hand claimed tasks to the workers until each has one running and one waiting."""
        if self.scheduler.stopped:
            self._withdraw_reserved()
        while len(self.running) < 2 * self.jobs:
            if not self.reserved and not self._reserve():
                return
            attempt = self.reserved.popleft()
            self.running[attempt.row] = attempt
            self.dispatcher.dispatch(attempt.row, attempt.job)

    def _reserve(self) -> bool:
        """Claim a batch of ready tasks in one transaction; False when none is ready. A batch
        holds about CLAIM_WINDOW_SECONDS of work for every worker (by the durations seen so
        far in this run), so short tasks share a transaction and long ones claim one at a
        time, never holding up a task the scheduler would put first for long. When tasks are
        that short, the batch is filled up with tasks claimed ahead: waiting on upstream
        tasks this run has in hand, so a chain or lattice, with few tasks ready at a time,
        claims as few times as independent tasks do."""
        wanted = max(2 * self.jobs - len(self.running), 1)
        window = 0
        if self.mean_seconds is not None:
            window = min(
                int(self.jobs * CLAIM_WINDOW_SECONDS / max(self.mean_seconds, 1e-4)),
                MAX_CLAIM_BATCH,
            )
            wanted = max(wanted, window)
        while not self.reserved:
            names: list[str] = []
            while (
                len(names) + len(self.reserved) < wanted
                and (name := self.scheduler.next_ready()) is not None
            ):
                early = self.ahead.pop(name, None)
                if early is not None:
                    self.reserved.append(early)  # claimed ahead: no transaction now
                else:
                    names.append(name)
            if not names:
                return bool(self.reserved)
            early_names: list[str] = []
            if window > 2 * self.jobs:
                room = window - len(names) - len(self.ahead)
                while len(early_names) < room and (name := self.scheduler.next_ahead()):
                    early_names.append(name)
            wanted_outputs = [(self.plan.output(n), n) for n in names + early_names]
            leases = self.store.leases.claim_many(wanted_outputs, self.run)
            for name, lease in zip(names, leases, strict=False):
                attempt = self._triage(name, lease)
                if attempt is not None:
                    self.reserved.append(attempt)
            for name, lease in zip(early_names, leases[len(names) :], strict=True):
                if lease.attempt is not None:
                    self.ahead[name] = self._attempt(name, lease)
                elif lease.state == "ours":  # an orphan's directory: inspected once ready
                    self.store.leases.release(self.plan.output(name))
        return True

    def _withdraw_reserved(self) -> None:
        """The run stopped (a failure without --keep-going, or Ctrl-C): claimed tasks not yet
        handed to a worker never start; their attempts are dropped, their leases released."""
        self._drop_ahead(list(self.ahead))
        if self.reserved:
            self._withdraw(list(self.reserved))
            self.reserved.clear()

    def _withdraw(self, attempts: list[_Attempt]) -> None:
        """Attempts that will never start: dropped, their leases released, their tasks
        stopped."""
        self.store.ledger.drop_attempts([attempt.row for attempt in attempts])
        for attempt in attempts:
            self.store.leases.release(attempt.job.output_id)
            self.scheduler.withdraw(attempt.name)

    def _drop_ahead(self, names: list[str]) -> None:
        """Give up tasks claimed ahead that will not run here (an upstream task failed, or
        the run stopped): drop their attempts, release their leases."""
        if not names:
            return
        dropped = [self.ahead.pop(name) for name in names]
        self.store.ledger.drop_attempts([attempt.row for attempt in dropped])
        for attempt in dropped:
            self.store.leases.release(attempt.job.output_id)

    def _triage(self, name: str, lease: Lease) -> _Attempt | None:
        """Act on a claim: a task done meanwhile, or held by another runner, needs no job;
        an orphan may be adopted; else the attempt to run."""
        output = self.plan.output(name)
        if lease.state == "done":
            self.scheduler.finished(name, True, "produced meanwhile by another run")
            self.emit(Event("adopt", name, output, "produced meanwhile by another run"))
            return None
        if lease.state == "held":
            self.deferred[name] = lease.holder
            self.emit(Event("wait", name, output, f"being produced by {lease.holder}"))
            return None
        if lease.attempt is None:  # the output directory exists already
            orphan = self.store.recovery.adopt_orphan(output)
            if orphan is not None:
                self.store.outputs.record_success(self._success(name, 0.0, orphan))
                self.scheduler.finished(name, True, ADOPTED)
                self.emit(Event("adopt", name, output, ADOPTED))
                return None
            row, log_path = self.store.ledger.begin_attempt(self.run, name, output)
            lease = Lease("ours", attempt=row, number=int(log_path.stem), log=str(log_path))
        return self._attempt(name, lease)

    def _attempt(self, name: str, lease: Lease) -> _Attempt:
        """The attempt a lease of ours began, with its job."""
        assert lease.attempt is not None and lease.number is not None and lease.log is not None
        output = self.plan.output(name)
        spec = self.plan.tasks[name]
        job = Job(
            task=name,
            output_id=output,
            command=spec.get("command", ""),
            env=dict(spec.get("env", {})),
            output_dir=self.store.outputs.staging_path(output),
            inputs={
                dep: self.store.outputs.output_folder(o)
                for dep, o in self.plan.inputs(name).items()
            },
            log_path=lease.log,
            timeout=spec.get("timeout"),
            spec=self.plan.spec(name),
            priority=int(self.scheduler.cost.get(name, 0.0) * 1000),
        )
        if "files" in spec:  # its listed files, copied and checked just before it runs
            job = job._replace(workdir=workdir_path(job.output_dir))
        job = placed(
            job, self.engine, self.files_root, self.remote, self.plan.inputs(name),
            replace=output in self.store.outputs.replacing,
        )  # fmt: skip
        return _Attempt(name, lease.attempt, lease.number, job)

    def _stop_workers(self, cancel: bool = False) -> None:
        """Let the dispatcher finish the jobs under way (and, unless ``cancel``, every job
        handed to it), then end its threads."""
        self.dispatcher.stop(cancel)
        self.commits.close()

    def _collect(
        self, attempt: _Attempt, outcome: tuple[Result, Manifest | None] | Exception
    ) -> None:
        name, output = attempt.name, attempt.job.output_id
        if isinstance(outcome, Exception):  # publishing failed (disk full...): no success
            discard(attempt.job)
            if isinstance(outcome, InputChanged):  # unless it was revoked meanwhile (moved away)
                why = self.untrusted.revoked_input(name)
                if not why:
                    self.commits.flush(force=True)  # the input may wait to be recorded
                    why = f"{outcome}; {self.untrusted.changed_input(name, outcome)}"
            elif isinstance(outcome, FilesChanged | InputUnavailable):
                why = str(outcome)
            else:
                why = f"could not publish: {outcome}"
            with contextlib.suppress(OSError), LogFile(attempt.job.log_path) as log:
                log.write(f"alamode: {why}\n".encode())
            result, manifest = Result(None, 0.0, detail=why), None
        else:
            result, manifest = outcome
            revoked = self.untrusted.revoked_input(name) if self.plan.inputs(name) else ""
            if revoked:  # built on an output revoked meanwhile: never recorded
                if manifest is not None and self.remote is not None:
                    self.store.outputs.forget(output)  # a worker published and marked it
                elif manifest is not None:
                    self.store.outputs.discard_output(
                        Path(self.store.outputs.output_folder(output))
                    )
                result, manifest = Result(None, result.seconds, detail=revoked), None
        previous = self.mean_seconds if self.mean_seconds is not None else result.seconds
        self.mean_seconds = 0.8 * previous + 0.2 * result.seconds
        if manifest is not None:
            # Published: downstream may start now. The success is recorded with the next
            # group commit, after its files are made durable.
            success = self._success(name, result.seconds, manifest, result.worker)
            self.commits.add((attempt.row, result.seconds, success))
            self.scheduler.finished(name, True, f"succeeded in {result.seconds:.1f} s")
            self.emit(
                Event("succeed", name, output, seconds=result.seconds, attempt=attempt.number)
            )
            return
        self.store.ledger.end_attempt(
            attempt.row,
            "failed",
            result.seconds,
            result.exit_code,
            result.signal,
            result.timed_out,
            oom_killed=result.oom_killed,
            detail=result.describe(),
        )
        retries = self.plan.tasks[name].get("retries", 0)
        self.failures[name] = self.failures.get(name, 0) + 1
        why = result.describe()
        if self.failures[name] <= retries:
            self.scheduler.requeue(name, f"retrying after it {why}")
            self.emit(
                Event(
                    "retry",
                    name,
                    output,
                    why,
                    result.seconds,
                    attempt.number,
                    attempt.job.log_path,
                )
            )
            return
        self.store.leases.release(output)
        self.scheduler.finished(name, False, why)
        blocked = [n for n in self.ahead if self.scheduler.status[n].state is not State.WAITING]
        self._drop_ahead(blocked)
        self.emit(
            Event("fail", name, output, why, result.seconds, attempt.number, attempt.job.log_path)
        )

    def _success(self, name: str, seconds: float, manifest: Manifest, worker: str = "") -> Success:
        return Success(
            self.plan.output(name),
            name,
            self.digest,
            self.run,
            seconds,
            self.engine.name,
            manifest,
            worker,
            tuple(self.plan.inputs(name).values()),
        )

    def _refused(self, refused: list[Refusal]) -> None:
        """Published, but not recorded: an input was revoked before the commit. The task
        fails with the reason (and what waits on it is blocked)."""
        for refusal in refused:
            self.store.leases.release(refusal.output)
            self.scheduler.finished(refusal.task, False, refusal.reason)
            self.emit(Event("fail", refusal.task, refusal.output, refusal.reason))

    def _recheck_deferred(self) -> None:
        for name in list(self.deferred):
            output = self.plan.output(name)
            if self.store.outputs.successes([output]):
                holder = self.deferred.pop(name)
                self.scheduler.finished(name, True, f"produced by {holder}")
                self.emit(Event("adopt", name, output, f"produced by {holder}"))
            elif self.store.leases.lease(output, self.run).state == "ours":
                del self.deferred[name]  # the other runner gave up (failed or died): our turn
                self.store.leases.release(output)
                self.scheduler.requeue(name, "the other run gave it up")

    def interrupt(self) -> None:
        """Ctrl-C: stop every command, record finished work, mark what had started
        interrupted, and drop the attempts that never started."""
        self.engine.stop_all()
        self._stop_workers(cancel=True)
        self.commits.settle()
        seconds: dict[int, float] = {}
        with contextlib.suppress(queue.Empty):
            while True:
                kind, row, outcome = self.inbox.get_nowait()
                if kind == "started":
                    self.running[row].started = True
                elif kind == "finished" and isinstance(outcome, tuple):
                    result, manifest = outcome
                    if manifest is None:
                        seconds[row] = result.seconds
                        continue
                    # it finished and was published before the stop: a whole output
                    attempt = self.running.pop(row)
                    success = self._success(attempt.name, result.seconds, manifest, result.worker)
                    self.commits.add((row, result.seconds, success))
        self.commits.flush(force=True)  # whole, published outputs: recording them loses nothing
        self._withdraw_reserved()
        never = [attempt for attempt in self.running.values() if not attempt.started]
        self.store.ledger.drop_attempts([attempt.row for attempt in never])
        for row, attempt in self.running.items():
            if attempt.started:
                self.store.ledger.end_attempt(
                    row, "interrupted", seconds.get(row, 0.0), None, None, False
                )
            discard(attempt.job)
            self.store.leases.release(attempt.job.output_id)
