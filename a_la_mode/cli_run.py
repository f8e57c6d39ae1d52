"""``alamode run`` and the commands that read a store: status, explain, history, log, gc,
provenance, verify, engines. Registered on the app of cli.py.

No ``from __future__ import annotations`` here: typer reads every command's annotations
when it builds the app, and string annotations cost it an ``eval`` each (30 ms a command
line, measured in docs/benchmarks.md).
"""

import datetime
import os
import signal
import sys
from types import FrameType
from typing import Annotated, Protocol, runtime_checkable

import typer

from . import render
from .cli import JsonOption, app, open_source, store_at
from .errors import AlamodeError
from .localstore import LocalStore
from .plugins import describe_engines, load_engine
from .queries import explain as explain_task
from .queries import gc_candidates, resolve_output, task_states
from .queries import provenance as provenance_of
from .queries import verify as verify_store
from .remote import store_of
from .runner import RunOptions, run_plan
from .scheduler import Scheduler, wanted

DEFAULT_STORE = ".alamode"

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        metavar="STORE",
        help="Store directory or URL (default: $ALAMODE_STORE or .alamode).",
    ),
]
PLAN_HELP = "A plan file or a spec file (compiled on the fly)."


def settled(store: LocalStore) -> LocalStore:
    """``store``, with the runs of runners that were killed marked so: their unfinished
    attempts then read as killed, not as running forever."""
    store.settle_dead_runs()
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
    source: Annotated[str, typer.Argument(help=PLAN_HELP, metavar="PLAN")],
    store: StoreOption = None,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=1, metavar="N", help="Tasks at once (default: cores)."),
    ] = os.cpu_count() or 1,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="TASK",
            help="Run only this task and its upstream (repeatable).",
        ),
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", "-k", help="After a failure, go on with other branches.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Say what would run, in order; run nothing.")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine", "-e", metavar="NAME", help="Engine plugin ('alamode engines' lists them)."
        ),
    ] = "local",
    default_image: Annotated[
        str | None,
        typer.Option(
            metavar="IMAGE", help="docker engine: the image for tasks without an 'image' key."
        ),
    ] = None,
    pull: Annotated[
        bool, typer.Option("--pull", help="docker engine: pull missing images first.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Run every task whose output has no recorded success, in dependency order.

    Exit status: 0 when every wanted task is done, 1 when a task failed, 2 on bad input,
    130 when interrupted.
    """
    plan = open_source(source)
    the_store = store_at(store or store_of(source))  # a pushed plan runs on its own store
    if dry_run:
        done = the_store.successes(plan.output(n) for n in wanted(plan, target))
        scheduler = Scheduler(plan, done, target, the_store.durations())
        order = scheduler.simulate()
        render.dry_run(order, scheduler, plan, json_)
        return
    flags = {"default_image": default_image, "pull": pull or None}
    the_engine = load_engine(engine, {k: v for k, v in flags.items() if v is not None})
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    options = RunOptions(jobs=jobs, targets=target, keep_going=keep_going)
    mode = (
        "json"
        if json_
        else "live"
        if sys.stdout.isatty() and not render.Settings.quiet
        else "plain"
    )
    with render.run_view(mode, plan, target) as view:
        report = run_plan(plan, the_store, the_engine, options, view)
    render.run_summary(report, json_)
    if not report.scheduler.succeeded:
        raise typer.Exit(1)


@app.command()
def status(
    source: Annotated[str, typer.Argument(help=PLAN_HELP, metavar="PLAN")],
    store: StoreOption = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", metavar="TASK", help="Only these tasks and their upstream."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Each task as done / would run / blocked / failed last time, with the reason."""
    the_store = settled(store_at(store or store_of(source)))
    states = task_states(open_source(source), the_store, target)
    render.status_table(states, json_)


@app.command()
def explain(
    source: Annotated[str, typer.Argument(help=PLAN_HELP, metavar="PLAN")],
    task: Annotated[str, typer.Argument(help="The task to explain.", metavar="TASK")],
    store: StoreOption = None,
) -> None:
    """Why TASK will or won't run; what changed since its last success."""
    plan = open_source(source)
    for line in explain_task(plan, settled(store_at(store or store_of(source))), task):
        render.text(line)


@app.command()
def history(
    task: Annotated[
        str | None, typer.Argument(help="Only this task's attempts.", metavar="TASK")
    ] = None,
    store: StoreOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, metavar="N", help="Show the last N attempts.")
    ] = 20,
    json_: JsonOption = False,
) -> None:
    """Recent attempts: run, task, attempt, duration, exit status."""
    render.history_table(settled(store_at(store)).history(task, limit), json_)


@app.command()
def log(
    task_or_id: Annotated[
        str, typer.Argument(help="A task name, or an output ID (or prefix).", metavar="TASK|ID")
    ],
    store: StoreOption = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", "-a", metavar="N", help="Default: last.")
    ] = None,
) -> None:
    """Print the captured output of a task's last (or given) attempt."""
    the_store = store_at(store)
    output = resolve_output(the_store, task_or_id)
    logs = the_store.attempt_logs(output)
    if not logs and attempt is None and isinstance(the_store, RemoteLogs):
        remote = the_store.remote_logs(output)  # run on another machine: its log is in the store
        if remote:
            sys.stdout.write(the_store.read_log(output, remote[-1]).decode(errors="replace"))
            return
    if not logs:
        raise AlamodeError(f"no attempts of {task_or_id} ({output[:12]}…) in {the_store.root}")
    number = max(logs) if attempt is None else attempt
    if number not in logs:
        raise AlamodeError(f"{task_or_id} has attempts 1..{max(logs)}, not {attempt}")
    if not logs[number].exists():  # the command printed nothing, so no file was made
        render.note(f"attempt {number} of {task_or_id} printed nothing")
        return
    sys.stdout.write(logs[number].read_text(errors="replace"))


@app.command()
def push(
    source: Annotated[str, typer.Argument(help=PLAN_HELP, metavar="PLAN")],
    store: Annotated[
        str, typer.Option("--store", "-s", metavar="STORE", help="The store's URL (or directory).")
    ],
    json_: JsonOption = False,
) -> None:
    """Upload a plan to a store, so that anyone can run it by its URL:
    alamode run STORE/plans/DIGEST."""
    plan = open_source(source)
    the_store = store_at(store)
    the_store.save_plan(plan)
    where = f"{store.rstrip('/')}/plans/{plan.digest}"
    if "://" not in store:
        where = str(the_store.plan_path(plan.digest))
    render.pushed(where, plan, json_)


@app.command()
def provenance(
    output: Annotated[
        str, typer.Argument(help="An output ID (or unique prefix) or task name.", metavar="ID|TASK")
    ],
    store: StoreOption = None,
    json_: JsonOption = False,
) -> None:
    """Which task, spec, inputs and plan produced an output, recursively."""
    the_store = store_at(store)
    render.provenance_tree(provenance_of(the_store, resolve_output(the_store, output)), json_)


@app.command()
def gc(
    store: StoreOption = None,
    keep: Annotated[
        int,
        typer.Option("--keep", min=1, metavar="K", help="Keep outputs of the last K plans run."),
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
    json_: JsonOption = False,
) -> None:
    """Remove outputs no longer reachable from the last K plans run, or from the plans run
    since a date (a dry run unless --yes; refused while a run holds the store)."""
    the_store = store_at(store)
    active = the_store.active_runs()
    if active:
        raise AlamodeError(
            f"run {active[0]} is using {the_store.root}; gc only when no run holds the store"
        )
    doomed, kept = gc_candidates(the_store, keep, _parse_date(since) if since else None)
    freed = sum(the_store.remove_output(o) for o in doomed) if yes else 0
    render.gc_report(doomed, kept, yes, freed, json_)


def _parse_date(text: str) -> float:
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise AlamodeError(
            f"--since {text!r} is not a date; write it like 2026-11-01 or 2026-11-01T12:00"
        ) from None


@app.command()
def verify(
    store: StoreOption = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Report only; keep the bad success records.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Re-hash every recorded output against its manifest. Bad ones lose their success
    record (so the next run redoes them) unless --keep. Exit 1 if any is bad."""
    bad = verify_store(store_at(store), forget=not keep)
    render.verify_report(bad, keep, json_)
    if bad:
        raise typer.Exit(1)


@app.command()
def engines(json_: JsonOption = False) -> None:
    """List the installed engine plugins and whether each works here."""
    render.engines_table(describe_engines(), json_)
