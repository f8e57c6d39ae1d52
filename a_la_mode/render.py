"""All terminal output goes through here, so ``--json`` and ``--quiet`` are one switch each.

Data (tables, JSON, graph text) goes to stdout; messages and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .plan import Plan

SHORT_ID = 12

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


class Settings:
    """Output switches set once by the CLI's global options."""

    quiet = False


def error(message: str) -> None:
    """One line on stderr: ``error: <message>``."""
    _err.print(f"[bold red]error:[/] {escape(message)}")


def note(message: str) -> None:
    """A progress or result message on stderr; silent with ``--quiet``."""
    if not Settings.quiet:
        _err.print(escape(message))


def raw_stderr(text: str) -> None:
    """Text passed through as is (e.g. the user's own traceback)."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def text(value: str) -> None:
    """Plain text on stdout (graph sources, schemas), with no markup interpretation."""
    sys.stdout.write(value if value.endswith("\n") else value + "\n")


def json_out(value: Any) -> None:
    """A JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The facts ``validate`` and ``encode`` report about a plan."""
    return {
        "digest": plan.digest,
        "format": plan.format,
        "tasks": len(plan.tasks),
        "levels": len(plan.toposort),
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    """``alamode show --json``: the plan as JSON, plus its digest (see docs/plan-format.md)."""
    return {"digest": plan.digest, **plan.to_dict(), "format": plan.format}


def plan_table(plan: Plan, source: str) -> None:
    """A readable table of tasks in run order: level, short output ID, inputs, command."""
    meta = ", ".join(f"{k}={v}" for k, v in sorted(plan.meta.items())) or "none"
    _out.print(
        f"[bold]{escape(source)}[/]  plan {plan.digest[:SHORT_ID]}  format {plan.format}  "
        f"{len(plan.tasks)} tasks in {len(plan.toposort)} levels  meta: {escape(meta)}"
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
            table.add_row(
                str(level),
                escape(name),
                plan.output(name)[:SHORT_ID],
                escape(", ".join(plan.inputs(name))) or "-",
                escape(str(command)) if command else "[dim](join point)[/]",
            )
    _out.print(table)
