"""Output of ``alamode run`` and the store commands (re-exported by render.py; import
render, not this module).

Three run views: ``live`` (a rich progress display, on a terminal), ``plain`` (a line per
event, when stdout is not a terminal or with ``--quiet``) and ``json`` (one JSON object per
line; see docs/running.md for the events).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from a_la_mode.cli import render
from a_la_mode.compile.planfile import PlanBase
from a_la_mode.review.queries import TaskState
from a_la_mode.run.events import Event, RunReport
from a_la_mode.run.scheduler import Scheduler, wanted
from a_la_mode.store.sizes import human_size

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.tree import Tree

SHORT_ID = 12


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _console() -> Console:
    return render.stdout()


@contextlib.contextmanager
def run_view(
    mode: str, plan: PlanBase, targets: list[str] | None
) -> Iterator[Callable[[Event], None]]:
    """A callable receiving run events, shown as ``mode`` says."""
    total = len(wanted(plan, targets))
    if mode == "json":
        yield lambda event: _out(json.dumps(event.to_json()))
    elif mode == "live":
        with _LiveView(total) as view:
            yield view.handle
    else:
        yield _plain_line


def _plain_line(event: Event) -> None:
    """A line per event; tasks already done are only counted in the summary, as make does."""
    if event.kind in ("finish", "skip"):
        return
    if render.Settings.quiet and event.kind not in ("fail",):
        return
    seconds = f" {event.seconds:.2f} s" if event.seconds is not None else ""
    detail = f"  ({event.detail})" if event.detail else ""
    log = f"  log: {event.log}" if event.kind in ("fail", "retry") else ""
    label = {"succeed": "ok", "fail": "FAILED"}.get(event.kind, event.kind)
    _out(f"{label:<8}{event.task}{seconds}{detail}{log}")
    if event.kind == "fail":
        for line in log_tail(event.log):
            _out(f"        │ {line}")


TAIL_LINES = 10


def log_tail(path: str, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a failed attempt's log, as make and Snakemake show them
    under a failure (the log's path gives the rest); none when it printed nothing."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))  # the end is enough: logs can be large
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return text.rstrip("\n").splitlines()[-lines:] if text.strip() else []


class _LiveView:
    """Progress bar, counts, and the tasks running now with their elapsed time."""

    def __init__(self, total: int) -> None:
        # only a live display needs these (a quicker start for -q, --json and pipes)
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]alamode run"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
        )
        self.bar = self.progress.add_task("run", total=total, counts="")
        self.running: dict[str, float] = {}
        self.counts = {"skipped": 0, "succeeded": 0, "failed": 0}
        self.live = Live(self, console=_console(), refresh_per_second=4, transient=True)

    def __enter__(self) -> _LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def __rich__(self) -> Group:
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table

        # the bar and counts are brought up to date here, at each refresh, not per event: a
        # run over 100,000 tasks done before would spend seconds redrawing otherwise
        shown = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        self.progress.update(self.bar, completed=sum(self.counts.values()), counts=shown)
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for name, since in list(self.running.items())[:10]:
            table.add_row(f"[cyan]{escape(name)}[/]", f"{now - since:.1f} s")
        if len(self.running) > 10:
            table.add_row(f"[dim]… and {len(self.running) - 10} more[/]", "")
        return Group(self.progress, table)

    def handle(self, event: Event) -> None:
        from rich.markup import escape

        console = self.live.console
        if event.kind == "start":
            self.running[event.task] = time.monotonic()
            return
        if event.kind in ("succeed", "fail", "adopt", "retry"):
            self.running.pop(event.task, None)
        if event.kind == "fail":
            console.print(
                f"[bold red]FAILED[/] {escape(event.task)}: {escape(event.detail)}  "
                f"[dim]log: {escape(event.log)}[/]"
            )
            for line in log_tail(event.log):
                console.print(f"  [dim]│[/] {escape(line)}", highlight=False)
        elif event.kind == "retry":
            console.print(f"[yellow]retry[/] {escape(event.task)}: {escape(event.detail)}")
        key = {
            "skip": "skipped",
            "succeed": "succeeded",
            "adopt": "succeeded",
            "fail": "failed",
        }.get(event.kind)
        if key:
            self.counts[key] += 1


def run_summary(report: RunReport, as_json: bool) -> None:
    if as_json:
        return  # the "finish" event already said it
    counts = report.scheduler.counts()
    parts = [f"{counts['done']} already done", f"{counts['succeeded']} succeeded"]
    for key in ("failed", "blocked", "stopped"):
        if counts[key]:
            parts.append(f"{counts[key]} {key}")
    total = len(report.scheduler.order)
    line = (
        f"{render.count(total, 'task')}: {', '.join(parts)} "
        f"in {report.seconds:.1f} s (run {report.run})"
    )
    if counts["failed"]:
        status = report.scheduler.status
        failed = [n for n in report.scheduler.order if status[n].state.value == "failed"]
        line += f"; failed: {', '.join(failed)} ('alamode log TASK' shows why)"
    if counts["failed"] or counts["blocked"] or counts["stopped"]:
        render.raw_stderr(line)  # with --quiet too: a run that did not finish says so
    else:
        render.note(line)  # a quiet run that did all it was asked says nothing


def dry_run(order: list[str], scheduler: Scheduler, plan: PlanBase, as_json: bool) -> None:
    done = [n for n in scheduler.order if scheduler.status[n].state.value == "done"]
    if as_json:
        _out(json.dumps({"would_run": order, "done": done}))
        return
    for name in order:
        _out(f"would run  {name}  {plan.output(name)[:SHORT_ID]}")
    render.note(f"{len(order)} would run, {len(done)} already done")


def status_table(states: list[TaskState], as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    if as_json:
        _out(json.dumps([s._asdict() for s in states], indent=2))
        return
    from rich.text import Text

    colours = {
        "done": "green",
        "would run": "yellow",
        "running": "cyan",
        "blocked": "dim",
        "failed last time": "red",
        "output missing": "red",
        "revoked": "magenta",
    }
    table = Table(show_edge=False, pad_edge=False)
    for column in ("state", "task", "output", "reason"):
        table.add_column(column, overflow="fold")
    for s in states:  # a label is styled as text, never markup: any label renders
        table.add_row(
            Text(s.label, style=colours.get(s.label, "")),
            escape(s.task),
            s.output[:SHORT_ID],
            escape(s.reason),
        )
    _console().print(table)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def history_table(rows: list[dict[str, Any]], as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    if as_json:
        _out(json.dumps(rows, indent=2))
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("run", "started", "task", "try", "seconds", "status", "exit", "output"):
        table.add_column(column)
    for row in rows:
        exit_text = (
            "timeout"
            if row["timed_out"]
            else "out of memory"
            if row.get("oom_killed")
            else f"signal {row['signal']}"
            if row["signal"]
            else str(row["exit_code"])
            if row["exit_code"] is not None
            else "-"
        )
        seconds = f"{row['seconds']:.2f}" if row["seconds"] is not None else "-"
        table.add_row(
            str(row["run"]),
            _when(row["started"]),
            escape(row["task"]),
            str(row["attempt"]),
            seconds,
            row["status"],
            exit_text,
            row["output"][:SHORT_ID],
        )
    _console().print(table)


def provenance_tree(node: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _out(json.dumps(node, indent=2))
        return
    _console().print(_provenance_node(node, None))


def _provenance_node(node: dict[str, Any], name: str | None) -> Tree:
    from rich.markup import escape
    from rich.tree import Tree

    label = f"[bold]{escape(node.get('task') or name or '?')}[/] {node['output'][:SHORT_ID]}"
    if node.get("revoked"):
        label += f"  [red]{escape(node['revoked'])}[/]"
    elif not node["recorded"]:
        return Tree(label + "  [red]no success recorded[/]")
    made = f"run {node['run']}, plan {node['plan'][:SHORT_ID]}"
    if "seconds" in node:
        made += f", {_when(node['recorded'])}, {node['seconds']:.2f} s"
    if node.get("worker"):  # published by a cluster's worker
        made += f", by worker {escape(str(node['worker']))}"
    tree = Tree(f"{label}  [dim]{made}[/]")
    if node.get("spec"):
        tree.add(f"[cyan]spec[/] {escape(json.dumps(node['spec'], sort_keys=True))}")
    for child in node.get("inputs", []):
        tree.add(_provenance_node(child, child.get("name")))
    return tree


def gc_report(
    doomed: list[dict[str, Any]],
    aside: list[dict[str, Any]],
    kept: list[str],
    removed: bool,
    freed: int,
    as_json: bool,
) -> None:
    """What ``gc`` removed (or would remove): each output with its task and size, each
    revoked or replaced output kept aside, and the plans whose outputs it keeps."""
    ids = [entry["output"] for entry in doomed]
    if as_json:
        key = "removed" if removed else "would_remove"
        _out(
            json.dumps(
                {
                    key: ids,
                    "outputs": doomed,
                    "set_aside": aside,
                    "kept_plans": kept,
                    "bytes_freed": freed,
                }
            )
        )
        return
    verb = "removed" if removed else "would remove"
    for entry in doomed:
        task = entry["task"] or "(no task recorded)"
        _out(f"{verb}  {task}  {entry['output'][:SHORT_ID]}  {human_size(entry['bytes'])}")
    for entry in aside:
        _out(
            f"{verb}  ({entry['kind']})  {entry['output'][:SHORT_ID]}  "
            f"{human_size(entry['bytes'])}  {entry['where']}"
        )
    shown = ", ".join(digest[:SHORT_ID] for digest in kept[:10]) + (" …" if len(kept) > 10 else "")
    plans = f"kept everything used by the {render.count(len(kept), 'kept plan')}"
    plans += f" ({shown})" if kept else ""
    if not doomed and not aside:
        render.note(f"nothing to remove; {plans}")
        return
    outputs = render.count(len(doomed) + len(aside), "output")
    total = human_size(sum(entry["bytes"] for entry in doomed + aside))
    summary = (
        f"removed {outputs} ({human_size(freed)})"
        if removed
        else f"{outputs} ({total}) would be removed; run again with --yes to remove them"
    )
    render.note(f"{summary}; {plans}")


def verify_report(bad: list[tuple[str, str, str]], kept: bool, as_json: bool) -> None:
    if as_json:
        _out(json.dumps([{"output": o, "task": t, "problem": p} for o, t, p in bad]))
        return
    for output, task, problem in bad:
        _out(f"BAD  {task}  {output[:SHORT_ID]}: {problem}")
    if not bad:
        render.note("every recorded output matches its manifest")
    elif not kept:
        render.note(
            f"{render.count(len(bad), 'bad output')}: their success records were dropped; "
            "the next run redoes them"
        )


def revoked(records: list[dict[str, Any]], dry_run: bool, as_json: bool) -> None:
    """What ``alamode revoke`` revoked (or, with ``dry_run``, would revoke)."""
    if as_json:
        render.json_out({"dry_run": dry_run, "revoked": records})
        return
    verb = "would revoke" if dry_run else "revoked"
    for record in records:
        _out(f"{verb} {record.get('task', '?')} {record['output'][:12]}: {record['reason']}")
    what = render.count(len(records), "output")
    if dry_run:
        render.note(f"{what} would be revoked; run again without --dry-run to revoke them")
    else:
        render.note(f"{what} revoked; their tasks run again on the next run")


def engines_table(rows: list[dict[str, str]], as_json: bool) -> None:
    if as_json:
        _out(json.dumps(rows, indent=2))
        return
    name = max((len(row["name"]) for row in rows), default=0) + 2
    target = max((len(row["target"]) for row in rows), default=0) + 2
    for row in rows:
        _out(f"{row['name']:<{name}}{row['target']:<{target}}{row['state']}")


def pushed(url: str, plan: PlanBase, as_json: bool) -> None:
    if as_json:
        _out(json.dumps({"url": url, "digest": plan.digest, "tasks": len(plan.tasks)}))
        return
    _out(url)
    render.note(
        f"pushed a plan of {render.count(len(plan.tasks), 'task')}; run it with: alamode run {url}"
    )
