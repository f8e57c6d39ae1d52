"""All terminal output goes through here, so ``--json`` and ``--quiet`` are one switch each.

Data (tables, JSON, graph text) goes to stdout; messages and errors go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from a_la_mode.compile.planfile import PlanBase
    from a_la_mode.review.diff import PlanDiff, TaskChange

SHORT_ID = 12
PIPED_WIDTH = 1_000  # columns for tables on a pipe: wide enough never to wrap a row


@functools.cache
def stdout() -> Console:
    """The rich console on stdout, made (and rich imported) on first use: a run that draws
    nothing (``-q``, ``--json``, a pipe) starts 35 ms sooner without rich."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped: a table row stays one line however long, for grep and awk (rich would wrap
        # and cut cells at 80 columns); $COLUMNS still sets a width.
        console.width = PIPED_WIDTH
    return console


@functools.cache
def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class Settings:
    """Output switches set once by the CLI's global options."""

    quiet = False


def count(number: int, noun: str) -> str:
    """``1 task``, ``2 tasks``: a number with its noun."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def error(message: str) -> None:
    """One line on stderr: ``error: <message>``."""
    from rich.markup import escape

    _stderr().print(f"[bold red]error:[/] {escape(message)}")


def note(message: str) -> None:
    """A progress or result message on stderr; silent with ``--quiet`` (and then rich is not
    even imported: 35 ms at the end of every quiet run)."""
    if Settings.quiet:
        return
    from rich.markup import escape

    _stderr().print(escape(message))


class Progress:
    """Counts items of long store work (``alamode verify``, ``gc --yes``) as a bar on stderr
    when stderr is a terminal, cleared when done; silent on a pipe and with ``--quiet``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._bar: Any = None  # rich's Progress, once started on a terminal
        self._task: Any = None

    def start(self, total: int) -> None:
        if Settings.quiet or not total or not sys.stderr.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn(self.what),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_stderr(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.what, total=total)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def raw_stderr(text: str) -> None:
    """Text passed through as is (e.g. the user's own traceback)."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def text(value: str) -> None:
    """Plain text on stdout (graph sources, schemas), with no markup interpretation."""
    sys.stdout.write(value if value.endswith("\n") else value + "\n")


def json_out(value: Any) -> None:
    """A JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def plan_summary(plan: PlanBase) -> dict[str, Any]:
    """The facts ``validate`` and ``encode`` report about a plan."""
    return {
        "digest": plan.digest,
        "format": plan.format,
        "tasks": len(plan.tasks),
        "levels": len(plan.toposort),
        "join_points": join_points(plan),
    }


def join_points(plan: PlanBase) -> list[str]:
    """The tasks with neither a command nor a function: they run nothing."""
    from a_la_mode.run.pyfunction import runs_something

    return [name for name in plan.toposort_flatten if not runs_something(plan.tasks[name])]


def join_point_note(plan: PlanBase) -> str:
    """``"; join points (run nothing): a, b"``, or ``""``."""
    names = join_points(plan)
    if not names:
        return ""
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"; join points (no command or function, they run nothing): {shown}"


def plan_json(plan: PlanBase) -> dict[str, Any]:
    """``alamode show --json``: the plan as JSON, plus its digest (see docs/plan-format.md)."""
    return {"digest": plan.digest, **plan.to_dict(), "format": plan.format}


def plan_table(plan: PlanBase, source: str) -> None:
    """A readable table of tasks in run order: level, short output ID, inputs, command."""
    from rich.markup import escape
    from rich.table import Table

    meta = ", ".join(f"{k}={v}" for k, v in sorted(plan.meta.items())) or "none"
    stdout().print(
        f"[bold]{escape(source)}[/]  plan {plan.digest[:SHORT_ID]}  format {plan.format}  "
        f"{count(len(plan.tasks), 'task')} in {count(len(plan.toposort), 'level')}  "
        f"meta: {escape(meta)}"
    )
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("level", justify="right", style="dim")
    table.add_column("task", style="bold")
    table.add_column("output", style="cyan", no_wrap=True)
    table.add_column("inputs")
    table.add_column("command", overflow="fold")
    for level, names in enumerate(plan.toposort):
        for name in sorted(names):
            command = plan.tasks[name].get("command", "")
            if isinstance(command, list):
                command = " ".join(str(part) for part in command)
            if not command and "function" in plan.tasks[name]:
                command = f"function {plan.tasks[name]['function']}"
            table.add_row(
                str(level),
                escape(name),
                plan.output(name)[:SHORT_ID],
                escape(", ".join(plan.inputs(name))) or "-",
                escape(str(command)) if command else "[dim](join point)[/]",
            )
    stdout().print(table)


def diff_report(result: PlanDiff, show_all: bool) -> None:
    """The default ``alamode diff`` report: a tree per root cause, then the rest."""
    from rich.markup import escape
    from rich.tree import Tree

    stdout().print(f"[bold]{diff_headline(result)}[/]")
    for meta_change in result.meta:
        stdout().print(f"meta {escape(meta_change.describe())}")
    downstream: dict[str, list[TaskChange]] = {}
    for change in result.changed_upstream():
        for root_name in change.causes:
            downstream.setdefault(root_name, []).append(change)
    for root in result.changed_itself():
        tree = Tree(
            f"[bold yellow]{escape(root.name)}[/]  changed itself  "
            f"[dim]{root.old_output[:SHORT_ID]} → {root.new_output[:SHORT_ID]}[/]"
        )
        for line in root.details():
            tree.add(f"[cyan]{escape(line)}[/]")
        for change in downstream.get(root.name, []):
            between = change.causes[root.name][1:-1]  # the root and the task are said already
            how = f"via {' → '.join(between)}" if between else "its input"
            tree.add(f"{escape(change.name)}  [dim]({escape(how)})[/]")
        stdout().print(tree)
    for label, names in (("added", result.added), ("removed", result.removed)):
        if names:
            stdout().print(f"[bold]{label}:[/] {escape(', '.join(names))}")
    if result.renamed:
        pairs = ", ".join(f"{old} → {new}" for old, new in result.renamed)
        stdout().print(f"[bold]renamed:[/] {escape(pairs)}")
    if show_all and result.unchanged:
        stdout().print(f"[bold]unchanged:[/] {escape(', '.join(result.unchanged))}")


def recompute_note(estimate: dict[str, Any]) -> None:
    """``diff --store``: what the store already has, and what is left to compute."""
    from rich.markup import escape

    have, todo = estimate["existing"], estimate["to_compute"]
    line = f"store {estimate['path']}: {len(have)} of {len(have) + len(todo)} new outputs exist"
    if have:
        line += f" ({', '.join(have)})"
    if todo:
        line += (
            f"; to compute: {count(len(todo), 'task')}, about {estimate['estimated_seconds']:.1f} s"
        )
        unknown = estimate["without_recorded_time"]
        if unknown:
            line += f" plus {len(unknown)} never run before"
    stdout().print(escape(line))
    for name, why in estimate.get("revoked", {}).items():
        stdout().print(escape(f"  {name}: {why}"))


def diff_stat(result: PlanDiff, show_all: bool) -> None:
    """``alamode diff --stat``: one line per task, ``status name detail``."""
    rows: list[tuple[str, str, str]] = []
    for change in result.changed:
        if change.reason == "self":
            detail = ", ".join([c.path for c in change.fields] + [c.name for c in change.inputs])
            rows.append(("self", change.name, detail))
        else:
            rows.append(("upstream", change.name, "← " + ", ".join(change.causes)))
    rows += [("added", name, "") for name in result.added]
    rows += [("removed", name, "") for name in result.removed]
    rows += [("renamed", new, f"was {old}") for old, new in result.renamed]
    if show_all:
        rows += [("same", name, "") for name in result.unchanged]
    width = max((len(name) for _, name, _ in rows), default=0)
    for status, name, detail in rows:
        text(f"{status:<9}{name:<{width}}  {detail}".rstrip())
    note(diff_headline(result))


def diff_headline(result: PlanDiff) -> str:
    """``plan a → plan b: 1 changed itself, 1 changed because of upstream, 2 unchanged``."""
    counts = [
        (len(result.changed_itself()), "changed itself"),
        (len(result.changed_upstream()), "changed because of upstream"),
        (len(result.added), "added"),
        (len(result.removed), "removed"),
        (len(result.renamed), "renamed"),
        (len(result.unchanged), "unchanged"),
    ]
    summary = ", ".join(f"{n} {label}" for n, label in counts if n) or "no tasks"
    return f"plan {result.old_digest[:SHORT_ID]} → {result.new_digest[:SHORT_ID]}: {summary}"


__all__ = [
    "Progress",
    "diff_headline",
    "diff_report",
    "diff_stat",
    "error",
    "json_out",
    "note",
    "plan_json",
    "plan_summary",
    "plan_table",
    "raw_stderr",
    "recompute_note",
    "text",
]
