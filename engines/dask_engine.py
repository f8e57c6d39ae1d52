"""The Dask engine (``--engine dask``): each task runs on a worker of a ``dask.distributed``
cluster, which reaches the store itself (placement ``"store"``, ``run/worker.py``).

- ``--scheduler tcp://HOST:PORT`` (or ``$DASK_SCHEDULER_ADDRESS``, or dask's own
  ``scheduler-address`` setting) names a running cluster; ``tls://`` takes the security
  settings dask reads from its configuration (``distributed.comm.tls.*``). Without one, a
  ``LocalCluster`` bound to 127.0.0.1 is started for the run and shut down after it.
- Each job is one future, submitted with the runner's priority (the longest remaining
  path), so Dask starts the tasks in the runner's order. The runner submits only tasks
  whose inputs are published, so Dask never needs the plan's graph.
- A worker lost mid-task: Dask runs the job again elsewhere; the create-only marker lets
  only one of them publish. A job that takes its workers down again and again is given up
  by Dask (``distributed.scheduler.allowed-failures``), and the task fails saying so.
- Ctrl-C: the futures are cancelled, and the commands under way on the workers are ended
  (their outputs are never published).
- On a worker, the store's copies go to ``$ALAMODE_CACHE`` if set, else to the worker's
  own local directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from a_la_mode.run.engine import EngineError, Job, LogFile, Result
from a_la_mode.run.worker import WorkerJob, pack_files, run_on_worker

from .local import LocalEngine


class DaskEngine:
    """Submit each job to a Dask cluster; poll its futures."""

    name = "dask"
    api_version = 2
    placement = "store"
    runs_functions = True  # a worker calls a function task in its own process

    def __init__(self, scheduler: str | None = None) -> None:
        self.address = scheduler
        self.client: Any = None
        self.cluster: Any = None
        self.token = uuid.uuid4().hex  # names this run's jobs on the workers
        self._futures: dict[str, tuple[Any, Job]] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise EngineError(
                "engine 'dask' needs dask.distributed: pip install 'a-la-mode[dask]'"
            ) from None

    def describe(self) -> str:
        where = self.address or "a LocalCluster on 127.0.0.1, started for each run"
        return f"workers of {where}"

    def _connect(self) -> None:
        if self.client is not None:
            return
        import dask
        from distributed import Client, LocalCluster

        address = self.address or dask.config.get("scheduler-address", None)
        # A lost scheduler is said once, by poll(), in one line: not also by the client's
        # own error log while it tries to reconnect.
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
        try:
            if address:
                self.client = Client(address, timeout="10s")
            else:
                self.cluster = LocalCluster(
                    host="127.0.0.1",
                    n_workers=os.cpu_count() or 1,
                    threads_per_worker=1,
                    # Their HTTP servers (health, metrics) start anyway: on loopback, on a
                    # free port. None would mean port 8787 on every interface.
                    dashboard_address="127.0.0.1:0",
                    worker_dashboard_address="127.0.0.1:0",
                )
                self.client = Client(self.cluster)
        except (OSError, TimeoutError, ValueError) as err:
            self.close()
            raise EngineError(
                f"engine 'dask': cannot reach the scheduler at {address}: {err}; start it "
                "(dask scheduler) or leave --scheduler out to start a local cluster"
            ) from None

    def parallelism(self, jobs: int | None) -> int:
        """``-j`` if given, else every worker thread of the cluster."""
        self._connect()
        if jobs:
            return jobs
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(info.get("nthreads", 1)) for info in workers.values()))

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """Connect (or start the local cluster); nothing to refuse: workers run commands and
        functions alike."""
        self._connect()

    def submit(self, job: Job) -> Hashable:
        here = (os.getcwd(),) if self.cluster is not None else ()  # its workers are ours
        work = WorkerJob(job._replace(log_path=""), pack_files(job.workdir), self.name, here)
        key = f"alamode-{job.task}-{job.output_id[:12]}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(
            work_on_worker, work, self.token, key=key, priority=job.priority, pure=False
        )
        with self._lock:
            self._futures[key] = (future, job)
        return key

    def poll(self, timeout: float) -> list[tuple[Hashable, Result]]:
        from distributed import wait

        with self._lock:
            futures = [future for future, _ in self._futures.values()]
        if not futures:
            return []
        try:
            wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        except Exception as err:  # the futures were cancelled under us: the scheduler is gone
            raise EngineError(self._lost(err)) from None
        ended = []
        for future in futures:
            if not future.done():
                continue
            with self._lock:
                _, job = self._futures.pop(future.key)
            ended.append((future.key, _outcome(future, job)))
        return ended

    def _lost(self, err: Exception) -> str:
        """One line for a cluster that went away under the run."""
        where = self.address or "the local cluster"
        if "connection" in str(err).lower() or self.client.status != "running":
            return (
                f"lost the connection to the Dask scheduler at {where}; nothing it was running "
                "is recorded: start it again and rerun (what was recorded is kept)"
            )
        return f"the Dask scheduler at {where} gave up: {str(err).splitlines()[0]}"

    def stop_all(self) -> None:
        """Cancel every future, and end the commands under way for this run."""
        with self._lock:
            futures = [future for future, _ in self._futures.values()]
        if self.client is None:
            return
        with contextlib.suppress(Exception):
            self.client.cancel(futures, force=True)
        with contextlib.suppress(Exception):
            self.client.run(stop_on_worker, self.token)

    def close(self) -> None:
        if self.client is not None:  # the workers forget this run's commands
            with contextlib.suppress(Exception):
                self.client.run(forget_on_worker, self.token)
        for part in (self.client, self.cluster):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self.client = self.cluster = None


def _outcome(future: Any, job: Job) -> Result:
    """A finished future as a Result; its log written where the runner keeps logs."""
    from distributed import KilledWorker

    try:
        result, log = future.result()
    except KilledWorker as err:
        why = (
            f"it took down every worker it ran on ({err.last_worker.address} last) and dask "
            "gave up on it; look for it running out of memory or killing its own process"
        )
        return Result(None, 0.0, detail=why)
    except Exception as err:  # cancelled, or the worker's own failure
        if future.cancelled() or type(err).__name__ == "CancelledError":
            return Result(None, 0.0, detail="cancelled")
        return Result(None, 0.0, detail=f"its worker failed: {type(err).__name__}: {err}")
    if log:
        with LogFile(job.log_path) as handle:
            handle.write(log)
    assert isinstance(result, Result)
    return result


# -- on the worker -----------------------------------------------------------------------------

_engines: dict[str, LocalEngine] = {}  # by run token: the commands each run has under way
_engines_lock = threading.Lock()


def work_on_worker(work: WorkerJob, token: str) -> tuple[Result, bytes]:
    """A job on a Dask worker (run/worker.py does the steps)."""
    from distributed import get_worker

    worker = get_worker()
    cache = os.environ.get("ALAMODE_CACHE") or str(Path(worker.local_directory, "alamode"))
    with _engines_lock:
        engine = _engines.setdefault(token, LocalEngine())
    return run_on_worker(work, cache, worker.address, engine.run)


def stop_on_worker(token: str) -> None:
    """Ctrl-C on the client: end the commands this run has under way on this worker."""
    with _engines_lock:
        engine = _engines.setdefault(token, LocalEngine())
    engine.stop_all()


def forget_on_worker(token: str) -> None:
    """The run is over: a long-lived worker keeps nothing of it."""
    with _engines_lock:
        _engines.pop(token, None)
