"""Looking after a store and its plugins: ``alamode revoke``, ``gc``, ``verify``, ``engines``."""

from __future__ import annotations

from typing import Annotated

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
from a_la_mode.errors import AlamodeError
from a_la_mode.review.queries import (
    gc_candidates,
    gc_details,
    resolve_output,
)
from a_la_mode.review.queries import verify as verify_store
from a_la_mode.run.plugins import describe_engines


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
    from a_la_mode.store.revocation import revoke as revoke_output

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
    aside = the_store.outputs.set_aside()  # revoked and replaced: never used again
    freed = 0
    if yes:
        with render.Progress("removing outputs") as progress:
            progress.start(len(doomed))
            for output in doomed:
                freed += the_store.outputs.remove_output(output)
                progress.advance()
        freed += the_store.outputs.remove_revoked()  # revoked outputs are never used again
    render_run.gc_report(details, aside, kept, yes, freed, json_)


def _parse_date(text: str) -> float:
    try:
        from datetime import datetime  # only for gc --since: not at every start-up

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
