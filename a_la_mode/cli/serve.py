"""The web service and schedules: serve, activate, deactivate, schedules."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from a_la_mode.cli import render
from a_la_mode.cli.app import (
    EvalParams,
    Json,
    Params,
    PlanSource,
    StoreDir,
    Today,
    Values,
    _State,
    app,
    existing_store,
    open_source,
    store_at,
)
from a_la_mode.compile.sources import SPEC_SUFFIXES, split_source
from a_la_mode.errors import AlamodeError

SERVICE = "The web service"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


FIRE_ONLY_WHILE_SERVING = (
    "schedules fire only while 'alamode serve' runs on this store (keep it running, e.g. "
    "as a systemd service)"
)


@app.command(rich_help_panel=SERVICE)
def serve(
    store: StoreDir = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="Address to listen on. Anything but loopback needs --token-file.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on.")] = 8787,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="A file holding the token every request must carry (needed off loopback).",
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", "-e", metavar="NAME", help="Engine for runs started here.")
    ] = "local",
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Also answer to this Host name (a proxy's), besides the bound address's "
            "(repeatable).",
        ),
    ] = None,
    missed: Annotated[
        str,
        typer.Option(
            "--missed",
            metavar="once|skip",
            help="After the service was down: run a schedule's latest missed slot once, or "
            "skip it.",
        ),
    ] = "once",
) -> None:
    """Serve the web UI over the store: inspect plans, review changes, start and cancel runs;
    run the active schedules when they are due (times in UTC)."""
    if missed not in ("once", "skip"):
        raise AlamodeError(f"--missed {missed!r}: use once or skip")
    token = _token(token_file)
    if host not in LOOPBACK:
        if token is None:
            raise AlamodeError(
                f"--host {host} makes the service, which runs commands, reachable from other "
                "machines: give --token-file FILE (a secret of at least 16 characters)"
            )
        render.note(
            f"warning: listening on {host}: anyone who can reach it and has the token can run "
            "this store's plans"
        )
    try:
        import uvicorn

        from a_la_mode.service.app import Settings, create_app
    except ImportError as err:
        raise AlamodeError(
            f"alamode serve needs its web packages ({err}): pip install 'a-la-mode[web]'"
        ) from None
    where = store_at(store, create=True).where  # made now: the service writes to it
    options = dict(_State.store_options)  # to the runs it starts, through their environment

    def open_it() -> object:
        return store_at(where, create=True, quiet=True)

    settings = Settings(
        store=str(where), open_store=open_it, host=host, port=port, token=token,
        engine=engine, store_options=options, missed=missed, allowed_hosts=allow_host or [],
    )  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    print(f"alamode serve: http://{shown}:{port}/ over {where} (times in UTC)", file=sys.stderr)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise AlamodeError(f"--token-file {path}: cannot read it ({err.strerror})") from None
    if len(token) < 16:
        raise AlamodeError(f"--token-file {path}: the token must be at least 16 characters")
    return token


@app.command(rich_help_panel=SERVICE)
def activate(
    source: PlanSource,
    store: StoreDir = None,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Default: meta.name, else the file's name."),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", "-e", metavar="NAME", help="Engine its runs use.")
    ] = "local",
    json_: Json = False,
) -> None:
    """Make this plan the active version of its pipeline, on the schedule in meta.schedule
    (cron, or @hourly, @daily...; in UTC). Earlier versions keep their history. Schedules
    fire only while 'alamode serve' runs on this store."""
    from a_la_mode.run.plugins import engine_entry_points
    from a_la_mode.service.schedules import (
        ScheduleBook,
        check_name,
        check_schedule,
        describe,
    )

    plan = open_source(source, values=Values(params, each, today))
    expression = plan.meta.get("schedule")
    if expression is None:
        raise AlamodeError(
            f"{source}: its meta has no schedule; add one, e.g. meta: {{schedule: '@daily'}}"
        )
    check_schedule(expression)
    if engine not in engine_entry_points():
        raise AlamodeError(f"--engine {engine!r}: no such engine; 'alamode engines' lists them")
    pipeline = check_name(name or str(plan.meta.get("name") or _stem(source)))
    the_store = store_at(store, create=True)
    book = ScheduleBook(the_store.root)
    the_store.outputs.save_plan(plan)
    schedule = book.activate(pipeline, plan.digest, expression, engine)
    shown = describe(schedule, time.time())
    if json_:
        render.json_out(shown)
        return
    render.text(
        f"{pipeline}: plan {plan.digest[:12]} active on {expression!r} (UTC); "
        f"next run {shown['next_run']}; version {shown['versions']}"
    )
    render.note(FIRE_ONLY_WHILE_SERVING)


def _stem(source: str) -> str:
    """``nightly`` of ``nightly.yaml``, ``flows.py:nightly``'s file, ``nightly.plan.bencode``
    or a pipelayer instance's folder ``nightly``."""
    name = split_source(source)[0].name.removesuffix(".bencode").removesuffix(".plan")
    return Path(name).stem if Path(name).suffix in SPEC_SUFFIXES else name


@app.command(rich_help_panel=SERVICE)
def deactivate(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The pipeline.", show_default=False)],
    store: StoreDir = None,
) -> None:
    """Stop running a pipeline on its schedule (its versions and history stay)."""
    from a_la_mode.service.schedules import ScheduleBook

    ScheduleBook(existing_store(store).root).deactivate(name)
    render.text(f"{name}: inactive")


@app.command(rich_help_panel=SERVICE)
def schedules(store: StoreDir = None, json_: Json = False) -> None:
    """What is active, its next run and its last result (times in UTC). Schedules fire
    only while 'alamode serve' runs on this store."""
    from a_la_mode.service.schedules import ScheduleBook, describe

    now = time.time()
    good, broken = ScheduleBook(existing_store(store).root).load()
    rows = [describe(s, now) for s in good]
    if json_:
        render.json_out(rows + [{"broken": True, **b} for b in broken])
        return
    for bad in broken:
        render.note(f"skipped: {bad['reason']}")
    if not rows:
        render.text("nothing is active: 'alamode activate SPEC' activates a plan")
    else:
        render.note(FIRE_ONLY_WHILE_SERVING)
    for row in rows:
        last = row["last"]
        ended = f"{last['outcome']} at {last['at']}" if last else "never ran"
        state = "active" if row["active"] else "inactive"
        render.text(
            f"{row['name']}  {state}  {row['schedule']}  plan {row['plan'][:12]}  "
            f"next {row['next_run'] or '-'}  last {ended}"
        )
