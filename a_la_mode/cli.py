"""The ``alamode`` command line. It only parses options and calls into the flow; output goes
through render.py. Every deliberate error is one line on stderr and exit status 2.

No ``from __future__ import annotations`` here: typer reads every command's annotations
when it builds the app, and string annotations cost it an ``eval`` each (30 ms a command
line, measured in docs/benchmarks.md).
"""

import atexit
import contextlib
import json
import os
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from . import __version__, render
from .errors import AlamodeError, PlanError, SpecFileError
from .graph import FORMATS
from .localstore import LocalStore, open_store
from .planfile import PlanBase, read_plan_file
from .queries import recompute_estimate
from .remote import load_plan_url
from .sources import is_spec_path, split_source

app = typer.Typer(
    name="alamode",
    help="Pure data pipelines that never repeat work and never lose old results.\n\n"
    "Compile a pipeline (a Python Dag or a JSON/YAML/TOML spec file) into a canonical, "
    "content-addressed plan, then inspect it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _State:
    debug = False
    store_options: dict[str, Any] = {}  # noqa: RUF012 - set once per process, by _main


SOURCE_HELP = "A spec file (file.py, file.py:dag_name, .json, .yaml, .toml) or a plan file."
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _version(value: bool) -> None:
    if value:
        render.text(f"alamode {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print results.")] = False,
    store_option: Annotated[
        list[str] | None,
        typer.Option(
            "--store-option",
            "-O",
            metavar="KEY=VALUE",
            help="KEY=VALUE for a URL store's filesystem, e.g. endpoint_url=http://127.0.0.1:9000 "
            "(repeatable; credentials belong in the environment or AWS config).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    _State.debug = debug
    render.Settings.quiet = quiet
    _State.store_options = parse_store_options(store_option or [])


def parse_store_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that reads as JSON (true, 3, {...}) is taken as such."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AlamodeError(f"--store-option {pair!r}: write it as KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def store_at(path: str | None) -> LocalStore:
    """The store for ``--store`` (or its default), with the ``--store-option`` settings."""
    return open_store(path, _State.store_options)


def open_source(source: str) -> PlanBase:
    """Compile a spec file, or load and verify a plan file (or a plan's URL in a store)."""
    if "://" in source:
        return load_plan_url(source, _State.store_options)
    if is_spec_path(source):
        from .specfile import compile_spec_file  # YAML and its models only when needed

        return compile_spec_file(source)
    path = split_source(source)[0]
    if not path.exists():
        raise PlanError(
            f"{source}: no such file; give a plan file or a spec file "
            "(.py, .json, .yaml, .yml, .toml)"
        )
    return read_plan_file(path)


@app.command()
def encode(
    spec: Annotated[
        str,
        typer.Argument(help="The spec file: file.py[:dag], .json, .yaml, .toml.", metavar="SPEC"),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Plan file to write ('-' for stdout). "
            "Default: <spec name>.plan.bencode in the current directory.",
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Compile a spec file into a canonical bencoded plan file."""
    if not is_spec_path(spec):
        raise SpecFileError(
            f"{spec}: not a spec file (.py, .json, .yaml, .yml, .toml); "
            "'alamode validate' checks plan files"
        )
    from .specfile import compile_spec_file

    plan = compile_spec_file(spec)
    if output == "-":
        sys.stdout.buffer.writelines(plan.iter_bytes())
        return
    target = Path(output or split_source(spec)[0].stem + ".plan.bencode")
    try:
        plan.save(target)
    except OSError as err:
        raise AlamodeError(f"cannot write {target}: {err.strerror}") from None
    summary = {"path": str(target), **render.plan_summary(plan)}
    if json_:
        render.json_out(summary)
    else:
        render.note(
            f"wrote {target}: {render.count(summary['tasks'], 'task')}, "
            f"plan {plan.digest[: render.SHORT_ID]}"
        )


@app.command()
def show(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP, metavar="SOURCE")],
    json_: JsonOption = False,
) -> None:
    """Show a plan's tasks in run order with their inputs and short output IDs."""
    plan = open_source(source)
    if json_:
        render.json_out(render.plan_json(plan))
    else:
        render.plan_table(plan, source)


@app.command()
def validate(
    sources: Annotated[
        list[str], typer.Argument(help=SOURCE_HELP + " Several may be given.", metavar="SOURCE...")
    ],
    json_: JsonOption = False,
) -> None:
    """Check spec or plan files without writing anything; exit 2 on the first bad one."""
    results = []
    for source in sources:
        plan = open_source(source)
        results.append({"source": source, "ok": True, **render.plan_summary(plan)})
        if not json_:
            render.note(
                f"ok: {source}: {render.count(len(plan.tasks), 'task')}, "
                f"plan {plan.digest[: render.SHORT_ID]}"
            )
    if json_:
        render.json_out(results)


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="The old side: " + SOURCE_HELP, metavar="OLD")],
    new: Annotated[str, typer.Argument(help="The new side: " + SOURCE_HELP, metavar="NEW")],
    json_: JsonOption = False,
    stat: Annotated[bool, typer.Option("--stat", help="One line per task.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Also list the unchanged tasks.")] = False,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 1 when the plans produce different outputs, 0 when the same.",
        ),
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            "-s",
            metavar="STORE",
            help="Say which new outputs this store already has, "
            "and the estimated time to compute the rest.",
        ),
    ] = None,
) -> None:
    """What changed between two plans (or spec files), and why.

    Tasks whose output ID moved either changed themselves (spec or dependencies; the fields
    are shown) or changed because of upstream (the root causes and paths are shown).
    """
    plans = []
    for side, source in (("old", old), ("new", new)):
        try:
            plans.append(open_source(source))
        except AlamodeError as err:
            raise type(err)(f"{side} side: {err}") from None
    from .diff import diff_plans

    result = diff_plans(*plans)
    estimate = recompute_estimate(result, store_at(store)) if store else None
    if json_:
        render.json_out({**result.to_json(), **({"store": estimate} if estimate else {})})
    elif stat:
        render.diff_stat(result, show_all)
    else:
        render.diff_report(result, show_all)
    if estimate and not json_:
        render.recompute_note(estimate)
    if exit_code and not result.same_outputs:
        raise typer.Exit(1)


class GraphFormat(StrEnum):
    dot = "dot"
    mermaid = "mermaid"


@app.command()
def graph(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP, metavar="SOURCE")],
    format_: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="dot (Graphviz) or mermaid.", metavar="FORMAT"),
    ] = GraphFormat.dot,
) -> None:
    """Print the dependency graph as Graphviz dot or Mermaid."""
    render.text(FORMATS[format_.value](open_source(source)))


@app.command()
def schema() -> None:
    """Print the JSON Schema of declarative spec files (JSON, YAML, TOML)."""
    from .specfile import PipelineFile

    render.text(json.dumps(PipelineFile.model_json_schema(), indent=2))


from . import cli_run  # noqa: E402, F401 - registers run, status, explain, ... on the app


def main() -> None:
    """Console-script entry point: run the app, turning our errors into one line and exit 2."""
    try:
        try:
            app(prog_name="alamode")
        except AlamodeError as err:
            if _State.debug:
                render.raw_stderr(traceback.format_exc())
            elif isinstance(err, SpecFileError) and err.user_traceback:
                render.raw_stderr(err.user_traceback)
            render.error(str(err))
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            render.error("interrupted; nothing was written")
            sys.exit(130)
    except SystemExit as done:
        _exit_without_teardown(done.code)


def _exit_without_teardown(code: str | int | None) -> NoReturn:
    """Exit as ``sys.exit(code)`` would, but skip the interpreter's tear-down of every module:
    40-50 ms per command for the libraries imported here (measured in docs/benchmarks.md).
    What must happen at exit still does: atexit handlers run and our output is flushed. Every
    command has finished its work by now: the store's transactions are committed and no
    thread of ours is left running."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1
        sys.stderr.write(f"{code}\n")
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: alamode status | head
            stream.flush()
    os._exit(status)
