"""What a worker does with a job at placement ``"store"`` (engine.py): it reaches the store
itself, so nothing is shared with the runner but the store.

In order, on the worker:

1. If the output is marked already (a worker lost after marking it, and its job run again),
   it is not run again: the marker's manifest is the result, naming the worker that made it.
2. Each input is fetched from the store into the worker's cache, checked against the
   manifest its marker lists.
3. The command runs (a function task is called in the worker's process) in a fresh staging
   directory of the cache; the task's listed files, shipped with the job, are a read-only
   folder it starts in.
4. On success: the output is sealed (manifest, read-only) and uploaded, then its marker is
   created, create-only. If another worker's marker landed first, that one stands and ours
   is dropped: an output is published at most once, however many workers ran it.
5. The result goes back with the manifest, the worker that published it, and the log.

The runner then records the attempt in its ledger; it never touches the output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from a_la_mode.errors import AlamodeError
from a_la_mode.run.engine import Job, LogFile, Result
from a_la_mode.run.inputguard import InputChanged, check, note
from a_la_mode.run.pyfunction import call_in_process, is_function_task
from a_la_mode.store.manifest import read_only, remove_tree
from a_la_mode.store.records import Success

# the listed files of a task, shipped to the worker: relative path -> (bytes, mode)
Files = dict[str, tuple[bytes, int]]


class WorkerJob(NamedTuple):
    """What crosses to the worker (pickled by the cluster: plain values only)."""

    job: Job  # placement "store": inputs by output ID, and job.remote set
    files: Files
    engine: str  # the engine's name, recorded in the marker
    # where a function task's modules are imported from, for workers of this machine (a
    # local cluster): the folder alamode was started in, as the local engine has it
    module_path: tuple[str, ...] = ()


def pack_files(workdir: str | None) -> Files:
    """The runner's checked copy of a task's listed files, to ship with its job."""
    if workdir is None:
        return {}
    files: Files = {}
    for folder, _, names in os.walk(workdir):
        for name in names:
            path = Path(folder, name)
            files[path.relative_to(workdir).as_posix()] = (path.read_bytes(), path.stat().st_mode)
    return files


_module_path_lock = threading.Lock()
_stores: dict[tuple[str, str, str], Any] = {}
_stores_lock = threading.Lock()


def worker_store(url: str, options: Mapping[str, Any], cache: str) -> Any:
    """The worker's store object for ``url`` (one per process and cache: it is reused)."""
    from a_la_mode.run.plugins import load_store

    key = (url, repr(sorted(options.items())), cache)
    with _stores_lock:
        if key not in _stores:
            _stores[key] = load_store(url, options, cache=cache)
        return _stores[key]


def run_on_worker(
    work: WorkerJob, cache: str, worker: str, run_command: Callable[[Job], Result]
) -> tuple[Result, bytes]:
    """Steps 1 to 5 of the module's docstring, on the worker ``worker`` whose cache
    directory is ``cache``; ``run_command`` runs a command (the local engine's ``run``).
    Returns the result and the log."""
    job, remote = work.job, work.job.remote
    assert remote is not None, "a job at placement 'store' names its store"
    outputs = worker_store(remote.url, remote.options, cache).outputs
    with _one_job_per_output(job.output_id):
        marker = None if remote.replace else outputs.done(job.output_id)
        if marker is not None:  # a lost worker's job run again, or a twin that came second
            by = standing(marker)
            files = marker.get("files", {})
            done = Result(0, 0.0, detail=f"published already by {by}", manifest=files)
            return done._replace(worker=by), b""
        return _run_and_publish(work, outputs, cache, worker, run_command)


_job_locks: dict[str, threading.Lock] = {}
_job_locks_lock = threading.Lock()


@contextlib.contextmanager
def _one_job_per_output(output_id: str) -> Iterator[None]:
    """Two jobs of one output on this worker (a runner whose lease expired and the one that
    took it over) take turns: they would share the cache's folder for it. The second finds
    the first's marker and publishes nothing."""
    with _job_locks_lock:
        lock = _job_locks.setdefault(output_id, threading.Lock())
    with lock:
        yield
    with _job_locks_lock:
        if not lock.locked():
            _job_locks.pop(output_id, None)


def _run_and_publish(
    work: WorkerJob, outputs: Any, cache: str, worker: str, run_command: Callable[[Job], Result]
) -> tuple[Result, bytes]:
    job, remote = work.job, work.job.remote
    assert remote is not None
    scratch = Path(tempfile.mkdtemp(prefix="job-", dir=_folder(cache, "work")))
    log_path = str(scratch / "log")
    try:
        with _replacing(outputs, job.output_id, remote.replace):
            staging = str(outputs.new_staging(job.output_id))
            result = _run(work, outputs, staging, scratch, log_path, run_command)
            if result.ok:
                result = _publish(work, outputs, staging, result, worker)
            else:
                shutil.rmtree(staging, ignore_errors=True)
        try:
            log = Path(log_path).read_bytes()
        except FileNotFoundError:
            log = b""
        return result, log
    finally:
        remove_tree(scratch)


def standing(marker: Mapping[str, Any]) -> str:
    """The worker (else the host) a success marker names."""
    return str(marker.get("worker") or marker.get("host") or "")


_replacing_lock = threading.Lock()


@contextlib.contextmanager
def _replacing(outputs: Any, output_id: str, replace: bool) -> Iterator[None]:
    """run --force: while this job runs, its output is one the store replaces. Jobs share
    the worker's store object, so each adds and removes its own output, never the set."""
    if not replace:
        yield
        return
    with _replacing_lock:
        outputs.replacing = outputs.replacing | {output_id}
    try:
        yield
    finally:
        with _replacing_lock:
            outputs.replacing = outputs.replacing - {output_id}


def _folder(cache: str, name: str) -> str:
    folder = os.path.join(cache, name)
    os.makedirs(folder, exist_ok=True)
    return folder


def _run(
    work: WorkerJob,
    outputs: Any,
    staging: str,
    scratch: Path,
    log_path: str,
    run_command: Callable[[Job], Result],
) -> Result:
    job = work.job
    started = time.monotonic()
    inputs: dict[str, str] = {}
    for name, output_id in job.inputs.items():
        try:
            inputs[name] = str(outputs.fetch(output_id))
        except AlamodeError as err:
            return _failed(log_path, f"could not fetch its input {name}: {err}", started)
    workdir = _unpack(work.files, scratch / "files") if work.files else None
    here = job._replace(output_dir=staging, inputs=inputs, log_path=log_path, workdir=workdir)
    noted = note(inputs)
    if is_function_task(job.spec):
        with _module_path_lock:
            sys.path[:0] = [folder for folder in work.module_path if folder not in sys.path]
        result = call_in_process(here)
    else:
        result = run_command(here)
    try:
        check(job.task, inputs, noted)
    except InputChanged as changed:  # the worker's copy is spoilt; the store's is intact
        outputs.drop_cached(job.inputs[changed.dependency])
        why = f"{changed}; this worker's copy of it was dropped, the store's is intact"
        return _failed(log_path, why, started)
    return result


def _publish(work: WorkerJob, outputs: Any, staging: str, result: Result, worker: str) -> Result:
    """Upload the staging directory and create its marker; whichever marker stands names
    the worker that published the output."""
    job, remote = work.job, work.job.remote
    assert remote is not None
    try:
        manifest = outputs.publish(job.output_id, staging)
        success = Success(
            job.output_id, job.task, remote.plan, remote.run, result.seconds, work.engine,
            manifest, worker,
        )  # fmt: skip
        marker = outputs.mark(success)
    except (AlamodeError, OSError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        return Result(None, result.seconds, detail=f"could not publish: {err}")
    return result._replace(manifest=marker.get("files", {}), worker=standing(marker))


def _unpack(files: Files, target: Path) -> str:
    """The shipped files, read-only, at their listed paths."""
    for name, (data, mode) in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode & 0o555)
    for folder, dirs, _ in os.walk(target, topdown=False):
        for entry in dirs:
            read_only(os.path.join(folder, entry))
    return str(target)


def _failed(log_path: str, why: str, started: float) -> Result:
    with LogFile(log_path) as log:
        log.write(f"alamode: {why}\n".encode())
    return Result(None, time.monotonic() - started, detail=why)
