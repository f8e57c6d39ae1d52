"""Handing jobs to an engine, in the form it speaks (see ``engine.py``), and posting what
happened to the runner's inbox: ``("started", row, None)`` when a job is under way, then
``("finished", row, outcome)``, where the outcome is the job's ``(Result, Manifest or
None)`` or the exception that publishing raised; or ``("withdrawn", row, None)`` for a job
that never started because the run stopped (fail fast: the ``Gate``). The runner's main
thread reads the inbox; a dispatcher never touches the store's database.

- ``Workers``, for blocking engines: ``-j`` threads, each calling ``engine.run``.
- ``Poller``, for submit-and-poll engines: jobs are submitted from a small pool (inputs
  may need fetching first), and one thread polls the engine and publishes what ended.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from a_la_mode.run.engine import Engine, Job, PollingEngine, Result, api_version
from a_la_mode.run.pyfunction import is_function_task
from a_la_mode.store.manifest import Manifest

Outcome = tuple[Result, Manifest | None] | Exception
Notice = tuple[str, int, Outcome | None]
StopsRun = Callable[[Job, Outcome], bool]  # does this outcome stop the run (fail fast)?
POLL_SECONDS = 0.2  # the longest a poll waits: how soon a stop is noticed
STOP_GRACE_SECONDS = 60  # after stop_all, how long ended jobs are waited for


class Steps(Protocol):
    """What the runner does around each command, on a dispatcher's threads."""

    def before(self, job: Job) -> None:
        """Make the staging directory; bring the inputs here if the store needs it."""

    def after(self, job: Job, result: Result) -> tuple[Result, Manifest | None]:
        """Publish the output of a command that succeeded; drop the staging otherwise."""


class Gate:
    """Fail fast. Once a dispatcher thread sees a failure that stops the run (the runner's
    ``stops_run`` says so: no --keep-going, no retry left), no job starts any more: each is
    withdrawn. Starting and finishing post under one lock, so no "started" ever follows
    the "finished" of the failure that stopped the run."""

    def __init__(self, inbox: queue.SimpleQueue[Notice], stops_run: StopsRun) -> None:
        self.inbox, self.stops_run = inbox, stops_run
        self.lock = threading.Lock()
        self.closed = False

    def start(self, row: int) -> bool:
        """Post "started" and say True; or, once closed, post "withdrawn" and say False."""
        with self.lock:
            self.inbox.put(("withdrawn" if self.closed else "started", row, None))
            return not self.closed

    def finish(self, row: int, job: Job, outcome: Outcome) -> None:
        with self.lock:
            if not self.closed and self.stops_run(job, outcome):
                self.closed = True
            self.inbox.put(("finished", row, outcome))


class Dispatcher(Protocol):
    def dispatch(self, row: int, job: Job) -> None: ...
    def stop(self, cancel: bool = False) -> None: ...


def dispatcher_for(
    engine: Engine | PollingEngine,
    steps: Steps,
    inbox: queue.SimpleQueue[Notice],
    jobs: int,
    stops_run: StopsRun,
) -> Dispatcher:
    """The dispatcher for ``engine``'s form of the contract."""
    gate = Gate(inbox, stops_run)
    if api_version(engine) == 2:
        assert isinstance(engine, PollingEngine)
        return Poller(engine, steps, gate, jobs)
    assert isinstance(engine, Engine)
    return Workers(engine, steps, gate, jobs)


def _join_point(job: Job) -> Result | None:
    """A pure join point (no command) has nothing to run: its output is an empty folder."""
    return (
        None if job.command or is_function_task(job.spec) else Result(0, 0.0, detail="join point")
    )


class Workers:
    """Plain threads fed by a queue: a thread pool's futures cost the main thread time for
    every task (measured: docs/benchmarks.md)."""

    def __init__(self, engine: Engine, steps: Steps, gate: Gate, jobs: int) -> None:
        self.engine, self.steps, self.gate = engine, steps, gate
        self.queue: queue.SimpleQueue[tuple[int, Job] | None] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._worker, name=f"alamode-task-{n}", daemon=True)
            for n in range(jobs)
        ]
        for thread in self.threads:
            thread.start()

    def dispatch(self, row: int, job: Job) -> None:
        self.queue.put((row, job))

    def stop(self, cancel: bool = False) -> None:
        """Let each thread finish the job it is on (and, unless ``cancel``, every job still
        queued), then end them."""
        if cancel:
            with contextlib.suppress(queue.Empty):
                while True:
                    self.queue.get_nowait()
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()

    def _worker(self) -> None:
        while (item := self.queue.get()) is not None:
            row, job = item
            if not self.gate.start(row):
                continue
            outcome: Outcome
            try:
                self.steps.before(job)
                result = _join_point(job) or self.engine.run(job)
                outcome = self.steps.after(job, result)
            except Exception as err:  # publishing failed (disk full...)
                outcome = err
            self.gate.finish(row, job, outcome)


class Poller:
    """Submit at once, poll from one thread: nothing waits per task."""

    def __init__(self, engine: PollingEngine, steps: Steps, gate: Gate, jobs: int) -> None:
        self.engine, self.steps, self.gate = engine, steps, gate
        self.submitting = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="alamode-submit")
        self.pending: dict[Hashable, tuple[int, Job]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.cancelling = threading.Event()
        self.wake = threading.Event()  # a job was submitted, or it is time to stop
        self.thread = threading.Thread(target=self._poll, name="alamode-poll", daemon=True)
        self.thread.start()

    def dispatch(self, row: int, job: Job) -> None:
        self.submitting.submit(self._submit, row, job)

    def _submit(self, row: int, job: Job) -> None:
        if self.stopping.is_set():
            return  # never started: the runner drops its attempt
        if not self.gate.start(row):
            return
        try:
            self.steps.before(job)
            joined = _join_point(job)
            if joined is not None:
                self.gate.finish(row, job, self.steps.after(job, joined))
                return
            with self.lock:
                if self.cancelling.is_set():  # Ctrl-C came first: it never runs
                    stopped = Result(None, 0.0, detail="stopped before it started")
                    self.gate.finish(row, job, self.steps.after(job, stopped))
                    return
                self.pending[self.engine.submit(job)] = (row, job)
            self.wake.set()
        except Exception as err:
            self.gate.finish(row, job, err)

    def _poll(self) -> None:
        """The polling thread: publish what ended, until stopped with nothing outstanding."""
        while True:
            if not self._outstanding():
                if self.stopping.is_set():
                    return
                self.wake.wait(POLL_SECONDS)
                self.wake.clear()
                continue
            try:
                ended = self.engine.poll(POLL_SECONDS)
            except Exception as err:  # the engine lost its workers: every pending job fails
                why = f"engine {self.engine.name!r} failed: {err}"
                ended = [(handle, Result(None, 0.0, detail=why)) for handle in self._handles()]
            for handle, result in ended:
                with self.lock:
                    row, job = self.pending.pop(handle)
                outcome: Outcome
                try:
                    outcome = self.steps.after(job, result)
                except Exception as err:  # publishing failed (disk full...)
                    outcome = err
                self.gate.finish(row, job, outcome)

    def _outstanding(self) -> bool:
        with self.lock:
            return bool(self.pending)

    def _handles(self) -> list[Hashable]:
        with self.lock:
            return list(self.pending)

    def stop(self, cancel: bool = False) -> None:
        """Every submitted job reported, then the threads end. On ``cancel`` (Ctrl-C),
        nothing more is submitted, and what was submitted is stopped."""
        if cancel:
            with self.lock:
                self.cancelling.set()
        self.submitting.shutdown(wait=True, cancel_futures=cancel)
        if cancel:
            self.engine.stop_all()  # the runner did, but a job may have been submitted since
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=STOP_GRACE_SECONDS)
        if self.thread.is_alive():
            raise RuntimeError(
                f"engine {self.engine.name!r} did not report {len(self._handles())} jobs "
                f"within {STOP_GRACE_SECONDS} s of being stopped"
            )
