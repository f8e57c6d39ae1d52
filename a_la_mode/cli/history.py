"""What a store remembers: ``alamode history``, ``log`` and ``provenance``."""

from __future__ import annotations

import codecs
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Protocol, runtime_checkable

import typer

from a_la_mode.cli import render, render_run
from a_la_mode.cli.app import (
    Json,
    OutputOrTask,
    StoreDir,
    app,
    existing_store,
    positive,
)
from a_la_mode.cli.run import settled
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.errors import AlamodeError
from a_la_mode.review.queries import provenance as provenance_of
from a_la_mode.review.queries import (
    resolve_output,
)


@runtime_checkable
class RemoteLogs(Protocol):
    """A store that also keeps the logs of attempts made on other machines."""

    def remote_logs(self, output_id: str) -> list[str]: ...

    def read_log(self, output_id: str, name: str) -> bytes: ...


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
def provenance(output: OutputOrTask, store: StoreDir = None, json_: Json = False) -> None:
    """Which task, spec, inputs and plan produced an output, recursively."""
    the_store = existing_store(store)
    tree = provenance_of(the_store, resolve_output(the_store, output))
    render_run.provenance_tree(tree, json_)
