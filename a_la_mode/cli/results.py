"""``alamode path`` and ``alamode cat``: where a task's result is, and what it says."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from a_la_mode.cli.app import (
    EvalParams,
    Params,
    PlanSource,
    StoreDir,
    Today,
    Values,
    app,
)
from a_la_mode.cli.run import plan_with_task
from a_la_mode.errors import AlamodeError
from a_la_mode.review.queries import result_folder

Task = Annotated[
    str, typer.Argument(metavar="TASK", help="The task whose output to find.", show_default=False)
]


@app.command()
def path(
    source: PlanSource,
    task: Task,
    store: StoreDir = None,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
) -> None:
    """Print the folder holding TASK's output for this plan (a blob store's output is
    fetched into this machine's cache first)."""
    plan, the_store = plan_with_task(source, task, store, Values(params, each, today))
    sys.stdout.write(f"{result_folder(plan, the_store, task)}\n")


@app.command()
def cat(
    source: PlanSource,
    task: Task,
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE",
            help="The file to print (the only one, if left out).",
            show_default=False,
        ),
    ] = None,
    store: StoreDir = None,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
) -> None:
    """Print a file of TASK's output for this plan."""
    plan, the_store = plan_with_task(source, task, store, Values(params, each, today))
    folder = result_folder(plan, the_store, task)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    name = file
    if name is None:
        if len(files) != 1:
            listed = ", ".join(files[:10]) + (" …" if len(files) > 10 else "")
            raise AlamodeError(
                f"task {task!r} has {len(files)} files; name one: {listed or '(none)'}"
            )
        name = files[0]
    if name not in files:
        from a_la_mode.compile.naming import did_you_mean

        raise AlamodeError(
            f"task {task!r} has no file {name!r}{did_you_mean(name, files)}; "
            f"'alamode path {source} {task}' shows where its output is"
        )
    sys.stdout.buffer.write((folder / name).read_bytes())
