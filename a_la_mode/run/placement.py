"""Where a job runs, as the runner prepares it for its engine (engine.py's placements):
at ``"store"``, the store its workers open and the inputs by output ID; and a function task
as a command, for an engine that does not call functions itself."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from a_la_mode.run.engine import EngineError, Job, RemoteStore
from a_la_mode.run.pyfunction import as_command, is_function_task
from a_la_mode.store.contract import Store


def remote_settings(store: Store, engine: object) -> tuple[str, dict[str, Any]] | None:
    """For an engine at placement "store": the URL and options its workers open the store
    with; refused (one line) for a store they cannot reach. None for other engines."""
    if getattr(engine, "placement", "local") != "store":
        return None
    settings = getattr(store, "worker_settings", lambda: None)()
    if settings is None:
        name = getattr(engine, "name", "?")
        raise EngineError(
            f"engine {name!r} runs tasks on workers that reach the store themselves, and "
            f"{store.where} is on this machine only: use a store they can reach, such as "
            "--store s3://bucket/prefix or --store file:///a/shared/folder"
        )
    url, options = settings
    return url, dict(options)


def placed(
    job: Job,
    engine: object,
    files_root: Path | None,
    remote: RemoteStore | None,
    inputs: Mapping[str, str],
    replace: bool = False,
) -> Job:
    """``job`` as ``engine`` takes it. ``inputs`` are the task's inputs by output ID;
    ``replace``: run --force makes this output again."""
    if is_function_task(job.spec) and not getattr(engine, "runs_functions", False):
        job = as_command(job, [str(p) for p in (files_root, Path.cwd()) if p])
    if remote is not None:  # the worker fetches the inputs by ID and publishes
        remote = remote._replace(replace=replace)
        job = job._replace(output_dir="", inputs=dict(inputs), remote=remote)
    return job
