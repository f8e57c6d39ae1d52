"""``alamode run`` and the commands that read a store: status, explain, history, log, push,
provenance, revoke, gc, verify, engines.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from a_la_mode.cli import render, render_run
from a_la_mode.cli.app import (
    EvalParams,
    Json,
    Params,
    PlanSource,
    StoreDir,
    Task,
    Today,
    Values,
    app,
    fail_with_all,
    image_options,
    open_source,
    positive,
    store_at,
)
from a_la_mode.compile.planfile import PlanBase
from a_la_mode.compile.sources import is_collection, is_instance, split_source
from a_la_mode.errors import AlamodeError, StoreError
from a_la_mode.review.queries import explain as explain_task
from a_la_mode.review.queries import (
    known_task,
    task_states,
)
from a_la_mode.run.options import RunOptions, check_engine_keys, forced
from a_la_mode.run.plugins import load_engine
from a_la_mode.run.runner import run_plan
from a_la_mode.run.scheduler import Scheduler, wanted
from a_la_mode.store.contract import Store
from a_la_mode.store.remote import store_of

CORES = os.cpu_count() or 1
SELECTING = "Choosing tasks"
ENGINE = "Engine"


def files_root(source: str) -> Path:
    """Where the tasks' listed files are: the spec's folder, or the plan file's (the current
    folder for a plan's URL). What is found there is checked against the plan's digests."""
    if "://" in source:
        return Path.cwd()
    path = split_source(source)[0].resolve()
    return path if is_instance(path) else path.parent


def plan_with_task(
    source: str, task: str, store: str | None, values: Values
) -> tuple[PlanBase, Store]:
    """The plan (``task`` checked to be one of its tasks before any store is looked at) and
    the store it runs on, settled."""
    plan = open_source(source, values=values)
    known_task(plan, task)
    return plan, settled(store_at(store or store_of(source)))


def settled(store: Store) -> Store:
    """``store``, with the runs of runners that were killed marked so: their unfinished
    attempts then read as killed, not as running forever. A store that cannot be written
    (its disk is full) is still read, as it is."""
    try:
        store.recovery.settle_dead_runs()
    except StoreError as err:
        render.note(f"{err}; showing it as it is")
    return store


def engine_options(pull: bool, scheduler: str | None, hosts: list[str] | None) -> dict[str, Any]:
    """The engine flags given, as the engine's keyword arguments."""
    given = {"pull": pull or None, "scheduler": scheduler, "hosts": hosts}
    return {key: value for key, value in given.items() if value}


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command()
def run(
    source: PlanSource,
    store: StoreDir = None,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            parser=positive,
            metavar="N",
            help=f"Tasks at once (default: the number of cores, {CORES}; on a Dask cluster, "
            "its worker threads; over SSH, on each host).",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="TASK",
            help="Run only this task and its upstream (repeatable).",
            rich_help_panel=SELECTING,
        ),
    ] = None,
    keep_going: Annotated[
        bool,
        typer.Option("--keep-going", "-k", help="After a failure, go on with other branches."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", "-n", help="Say what would run, in order; run nothing."),
    ] = False,
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force",
            "-f",
            metavar="TASK",
            help="Run TASK again though a success is recorded (repeatable); its old output is "
            "kept aside until gc.",
            rich_help_panel=SELECTING,
        ),
    ] = None,
    force_downstream: Annotated[
        bool,
        typer.Option(
            "--force-downstream",
            help="With --force: run everything downstream of the forced tasks again too.",
            rich_help_panel=SELECTING,
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            "-e",
            metavar="NAME",
            help="Engine plugin (default: local; 'alamode engines' lists them).",
            show_default=False,
            rich_help_panel=ENGINE,
        ),
    ] = "local",
    default_image: Annotated[
        str | None,
        typer.Option(
            "--default-image",
            metavar="IMAGE",
            help="Compile the spec with this image for tasks without an 'image' key (part of "
            "their output IDs; for a plan, give it to 'alamode encode').",
            rich_help_panel=ENGINE,
        ),
    ] = None,
    pull: Annotated[
        bool,
        typer.Option(
            "--pull", help="docker engine: pull missing images first.", rich_help_panel=ENGINE
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="dask engine: the scheduler of a running cluster, tcp://HOST:PORT (default: "
            "$DASK_SCHEDULER_ADDRESS, else a local cluster for the run).",
            rich_help_panel=ENGINE,
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            metavar="USER@HOST[:PORT]",
            help="ssh engine: a host to run tasks on (repeatable; -j tasks on each).",
            rich_help_panel=ENGINE,
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> int:
    """Run every task whose output has no recorded success, in dependency order.

    Exit status: 0 when every wanted task is done, 1 when a task failed, 2 on bad input,
    130 when interrupted.
    """
    plan = open_source(source, image_options(default_image, pin=False), Values(params, each, today))
    options = RunOptions(
        jobs,
        target,
        keep_going,
        force=tuple(force or ()),
        force_downstream=force_downstream,
        files_root=files_root(source),
    )
    try:  # bad input is refused before a store is made
        names = wanted(plan, target)
        check_engine_keys(plan, names)
        again = forced(plan, names, options)
    except AlamodeError as err:
        raise AlamodeError(f"{source}: {err}") from None
    if force_downstream and not force:
        raise AlamodeError("--force-downstream goes with --force TASK")
    the_engine = None if dry_run else load_engine(engine, engine_options(pull, scheduler, host))
    # A pushed plan runs on its own store; a dry run makes none, and neither does an engine
    # whose workers cannot reach a directory store (run_plan says so).
    create = the_engine is not None and getattr(the_engine, "placement", "local") == "local"
    the_store = store_at(store or store_of(source), create=create, quiet=the_engine is not None)
    if the_engine is None:
        done = the_store.outputs.successes(plan.output(n) for n in names)
        done -= {plan.output(n) for n in again}
        simulated = Scheduler(plan, done, target, the_store.ledger.durations())
        order = simulated.simulate()
        render_run.dry_run(order, simulated, plan, json_)
        return 0
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    mode = (
        "json"
        if json_
        else "live"
        if sys.stdout.isatty() and not render.Settings.quiet
        else "plain"
    )
    options = options._replace(skip_events=mode != "plain")
    try:
        with render_run.run_view(mode, plan, target) as view:
            report = run_plan(plan, the_store, the_engine, options, view)
    finally:
        getattr(the_engine, "close", lambda: None)()  # a cluster started for the run, say
    render_run.run_summary(report, json_)
    return 0 if report.scheduler.succeeded else 1


@app.command()
def status(
    source: PlanSource,
    store: StoreDir = None,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", metavar="TASK", help="Only these tasks and their upstream."),
    ] = None,
    json_: Json = False,
) -> None:
    """Each task as done / would run / blocked / failed last time, with the reason."""
    the_store = settled(store_at(store or store_of(source)))
    states = task_states(open_source(source, values=Values(params, each, today)), the_store, target)
    render_run.status_table(states, json_)


@app.command()
def explain(
    source: PlanSource,
    task: Task,
    store: StoreDir = None,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
) -> None:
    """Why TASK will or won't run; what changed since its last success."""
    plan, the_store = plan_with_task(source, task, store, Values(params, each, today))
    for line in explain_task(plan, the_store, task):
        render.text(line)


@app.command()
def push(
    source: PlanSource,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            "-s",
            metavar="STORE",
            help="The store's URL (or directory).",
            show_default=False,
        ),
    ],
    json_: Json = False,
) -> None:
    """Upload a plan to a store, so that anyone can run it by its URL:
    alamode run STORE/plans/DIGEST. A pipelayer directory uploads a plan per instance, once
    every instance compiles."""
    from a_la_mode.compile.pipelayer import check_all

    if is_collection(Path(source)):
        compiled, errors = check_all(Path(source))
        if errors:
            fail_with_all(errors, "; nothing was pushed")
        plans: list[PlanBase] = list(compiled.values())
    else:
        plans = [open_source(source)]
    the_store = store_at(store, create=True)
    for plan in plans:
        the_store.outputs.save_plan(plan)
        where = f"{store.rstrip('/')}/plans/{plan.digest}"
        if "://" not in store:
            where = str(the_store.outputs.plan_path(plan.digest))
        render_run.pushed(where, plan, json_)
