"""``alamode run`` and the commands that read a store: status, explain, history, log, push,
provenance, revoke, gc, verify, engines.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Protocol, runtime_checkable

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
    existing_store,
    image_options,
    open_source,
    positive,
    store_at,
)
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.compile.planfile import PlanBase
from a_la_mode.compile.sources import is_collection, is_instance, split_source
from a_la_mode.errors import AlamodeError, StoreError
from a_la_mode.review.queries import explain as explain_task
from a_la_mode.review.queries import (
    gc_candidates,
    gc_details,
    known_task,
    resolve_output,
    task_states,
)
from a_la_mode.review.queries import provenance as provenance_of
from a_la_mode.review.queries import verify as verify_store
from a_la_mode.run.options import RunOptions, check_engine_keys, forced
from a_la_mode.run.plugins import describe_engines, load_engine
from a_la_mode.run.runner import run_plan
from a_la_mode.run.scheduler import Scheduler, wanted
from a_la_mode.store.contract import Store
from a_la_mode.store.remote import store_of

CORES = os.cpu_count() or 1
OutputOrTask = Annotated[
    str,
    typer.Argument(
        metavar="ID|TASK", help="An output ID (or unique prefix) or task name.", show_default=False
    ),
]
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


@runtime_checkable
class RemoteLogs(Protocol):
    """A store that also keeps the logs of attempts made on other machines."""

    def remote_logs(self, output_id: str) -> list[str]: ...

    def read_log(self, output_id: str, name: str) -> bytes: ...


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
        int,
        typer.Option(
            "--jobs",
            "-j",
            parser=positive,
            metavar="N",
            help=f"Tasks at once (default: the number of cores, {CORES}).",
            show_default=False,
        ),
    ] = CORES,
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
    # a pushed plan runs on its own store; a dry run makes none
    the_store = store_at(store or store_of(source), create=not dry_run)
    if dry_run:
        done = the_store.outputs.successes(plan.output(n) for n in names)
        done -= {plan.output(n) for n in again}
        scheduler = Scheduler(plan, done, target, the_store.ledger.durations())
        order = scheduler.simulate()
        render_run.dry_run(order, scheduler, plan, json_)
        return 0
    the_engine = load_engine(engine, {"pull": True} if pull else None)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    mode = (
        "json"
        if json_
        else "live"
        if sys.stdout.isatty() and not render.Settings.quiet
        else "plain"
    )
    options = options._replace(skip_events=mode != "plain")
    with render_run.run_view(mode, plan, target) as view:
        report = run_plan(plan, the_store, the_engine, options, view)
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
def history(
    task: Annotated[
        str | None,
        typer.Argument(metavar="TASK", help="Only this task's attempts.", show_default=False),
    ] = None,
    store: StoreDir = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            "-n",
            parser=positive,
            metavar="N",
            help="Show the last N attempts (default: 20).",
            show_default=False,
        ),
    ] = 20,
    json_: Json = False,
) -> None:
    """Recent attempts: run, task, attempt, duration, exit status."""
    the_store = settled(existing_store(store))
    rows = the_store.ledger.history(task, limit)
    if not rows:  # said, rather than an empty table
        which = f" of {task!r}" if task else ""
        hint = did_you_mean(task, the_store.ledger.attempted_tasks()) if task else ""
        render.note(f"no attempts{which} in {the_store.where}{hint}")
        if not json_:
            return
    render_run.history_table(rows, json_)


@app.command()
def log(
    task_or_id: Annotated[
        str,
        typer.Argument(
            metavar="TASK|ID",
            help="A task name, or an output ID (or prefix).",
            show_default=False,
        ),
    ],
    store: StoreDir = None,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", "-a", parser=positive, metavar="N", help="Default: the last."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Then print what it adds, until the attempt ends (as tail -f)."
        ),
    ] = False,
) -> None:
    """Print the captured output of a task's last (or given) attempt."""
    the_store = existing_store(store)
    output = resolve_output(the_store, task_or_id)
    logs = the_store.ledger.attempt_logs(output)
    if follow and not logs:
        raise AlamodeError(
            f"--follow reads the log of an attempt made on this machine as it grows; "
            f"{task_or_id} has none here"
        )
    if not logs and attempt is None and isinstance(the_store, RemoteLogs):
        remote = the_store.remote_logs(output)  # run on another machine: its log is in the store
        if remote:
            sys.stdout.write(the_store.read_log(output, remote[-1]).decode(errors="replace"))
            return
    if not logs:
        raise AlamodeError(f"no attempts of {task_or_id} ({output[:12]}…) in {the_store.where}")
    number = max(logs) if attempt is None else attempt
    if number not in logs:
        raise AlamodeError(f"{task_or_id} has attempts 1..{max(logs)}, not {attempt}")
    if follow and _follow(logs[number], lambda: the_store.ledger.attempt_running(output, number)):
        return
    if not logs[number].exists():  # the command printed nothing, so no file was made
        render.note(f"attempt {number} of {task_or_id} printed nothing")
        return
    sys.stdout.write(logs[number].read_text(errors="replace"))


def _follow(path: Path, running: Callable[[], bool], every: float = 0.2) -> int:
    """Print the log at ``path`` and what is added to it, until ``running()`` says the
    attempt is over (then what it wrote last); return how many bytes that was. The file
    appears only once the command prints."""
    position, text = 0, codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        still = running()  # asked first: what is written before it ends is read below
        with contextlib.suppress(FileNotFoundError), path.open("rb") as log:
            log.seek(position)
            while chunk := log.read(65536):
                position += len(chunk)
                sys.stdout.write(text.decode(chunk))  # a character cut in two waits
            sys.stdout.flush()
        if not still:
            sys.stdout.write(text.decode(b"", final=True))
            return position
        time.sleep(every)


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
        for error in errors[:-1]:
            render.error(error)
        if errors:
            raise AlamodeError(errors[-1] + "; nothing was pushed")
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


@app.command()
def provenance(output: OutputOrTask, store: StoreDir = None, json_: Json = False) -> None:
    """Which task, spec, inputs and plan produced an output, recursively."""
    the_store = existing_store(store)
    tree = provenance_of(the_store, resolve_output(the_store, output))
    render_run.provenance_tree(tree, json_)


@app.command()
def revoke(
    output: OutputOrTask,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", "-r", metavar="TEXT", help="Why the output is bad.", show_default=False
        ),
    ],
    store: StoreDir = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Say what would be revoked; change nothing.")
    ] = False,
    json_: Json = False,
) -> None:
    """Mark a recorded success as bad: it is never used again, its task runs again, and so
    does every output built on it (found through every plan the store has seen)."""
    from a_la_mode.review.revocation import revoke as revoke_output

    if not reason.strip():
        raise AlamodeError("--reason is empty; say why the output is bad")
    the_store = existing_store(store)
    output_id = resolve_output(the_store, output)
    records = revoke_output(the_store, output_id, reason.strip(), dry_run=dry_run)
    render_run.revoked(records, dry_run, json_)


@app.command()
def gc(
    store: StoreDir = None,
    keep: Annotated[
        int,
        typer.Option(
            "--keep",
            parser=positive,
            metavar="K",
            help="Keep outputs of the last K plans run (default: 5).",
            show_default=False,
        ),
    ] = 5,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Instead of --keep: keep what plans run since this date "
            "(YYYY-MM-DD or ISO time) use; older outputs go.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really remove (default: dry run).")] = False,
    json_: Json = False,
) -> None:
    """Remove outputs no longer reachable from the last K plans run, or from the plans run
    since a date (a dry run unless --yes; refused while a run holds the store)."""
    the_store = existing_store(store)
    active = the_store.leases.active_runs()
    if active:
        raise AlamodeError(
            f"run {active[0]} is using {the_store.where}; gc only when no run holds the store"
        )
    doomed, kept = gc_candidates(the_store, keep, _parse_date(since) if since else None)
    details = gc_details(the_store, doomed)
    freed = 0
    if yes:
        with render.Progress("removing outputs") as progress:
            progress.start(len(doomed))
            for output in doomed:
                freed += the_store.outputs.remove_output(output)
                progress.advance()
        freed += the_store.outputs.remove_revoked()  # revoked outputs are never used again
    render_run.gc_report(details, kept, yes, freed, json_)


def _parse_date(text: str) -> float:
    try:
        from datetime import datetime  # only for gc --before: not at every start-up

        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise AlamodeError(
            f"--since {text!r} is not a date; write it like 2026-11-01 or 2026-11-01T12:00"
        ) from None


@app.command()
def verify(
    store: StoreDir = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Report only; keep the bad success records.")
    ] = False,
    json_: Json = False,
) -> int:
    """Re-hash every recorded output against its manifest. Bad ones lose their success
    record (so the next run redoes them) unless --keep. Exit 1 if any is bad."""
    with render.Progress("verifying outputs") as progress:
        bad = verify_store(existing_store(store), not keep, progress)
    render_run.verify_report(bad, keep, json_)
    return 1 if bad else 0


@app.command()
def engines(json_: Json = False) -> None:
    """List the installed engine plugins and whether each works here."""
    render_run.engines_table(describe_engines(), json_)
