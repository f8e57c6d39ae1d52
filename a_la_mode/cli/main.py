"""The ``alamode`` command line: a typer app (cli/app.py) whose commands live in plans.py,
run.py and results.py. It only parses options and calls into the flow; output goes through
render.py. Every deliberate error, usage errors included, is one line on stderr and exit
status 2; ``--debug`` shows the traceback.

typer is held below 0.26: from 0.26 it coerces every parameter through pydantic, which took
120 ms of every command's start-up (docs/benchmarks.md).

The global options (``--debug``, ``--quiet``, ``--store-option``) may come before the
command or after it: those after it are moved before it, where click takes them.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import click
import typer

from a_la_mode import __version__
from a_la_mode.cli import render
from a_la_mode.cli.app import _State, app
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.errors import AlamodeError, SpecFileError

# Each command module adds its commands to the app when imported: in this order, --help's.
for _module in ("plans", "run", "results", "history", "upkeep", "serve"):
    importlib.import_module(f"a_la_mode.cli.{_module}")

GLOBAL_FLAGS = frozenset({"--debug", "--quiet", "-q"})
GLOBAL_WITH_VALUE = frozenset({"--store-option", "-O"})
GLOBAL = "Global options (before or after the command)"


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"alamode {__version__}")
        raise typer.Exit()


@app.callback()
def global_options(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks for errors.", rich_help_panel=GLOBAL),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Only print results.", rich_help_panel=GLOBAL),
    ] = False,
    store_option: Annotated[
        list[str] | None,
        typer.Option(
            "--store-option",
            "-O",
            metavar="KEY=VALUE",
            help="KEY=VALUE for a URL store's filesystem, e.g. "
            "endpoint_url=http://127.0.0.1:9000 (repeatable; credentials belong in the "
            "environment or AWS config).",
            rich_help_panel=GLOBAL,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Pure data pipelines that never repeat work and never lose old results."""
    _State.debug = debug
    render.Settings.quiet = quiet
    _State.store_options = {**options_from_environment(), **parse_store_options(store_option or [])}


STORE_OPTIONS_VARIABLE = "ALAMODE_STORE_OPTIONS"


def options_from_environment() -> dict[str, Any]:
    """``$ALAMODE_STORE_OPTIONS``: a JSON object of store options. ``alamode serve`` hands
    its options to the runs it starts this way: an argv is readable by every local user
    (in /proc), a process's environment only by its owner."""
    text = os.environ.get(STORE_OPTIONS_VARIABLE)
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise AlamodeError(f"${STORE_OPTIONS_VARIABLE} must be a JSON object of store options")
    return options


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


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` with the global options moved to the front (in their order), so that
    ``alamode run PLAN -q`` means ``alamode -q run PLAN``. Nothing after ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            rest.extend([word, *words])
        elif word in GLOBAL_FLAGS:
            front.append(word)
        elif word in GLOBAL_WITH_VALUE:
            front.extend([word, next(words, "")])
        elif word.startswith("--store-option=") or (word.startswith("-O") and len(word) > 2):
            front.append(word)
        else:
            rest.append(word)
    return front + rest


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run a command, turning our errors into one line and
    exit 2."""
    try:
        status = _dispatch(sys.argv[1:] if argv is None else list(argv))
        sys.stdout.flush()  # a reader that went away shows here, where it is handled
    except AlamodeError as err:
        if _State.debug:
            import traceback  # here only: 3 ms of every command's start

            render.raw_stderr(traceback.format_exc())
        elif isinstance(err, SpecFileError) and err.user_traceback:
            render.raw_stderr(err.user_traceback)
        render.error(str(err))
        sys.exit(err.exit_code)
    except RecursionError:  # a safety net: the loaders refuse deep input themselves
        render.error("the input is nested too deeply to read; flatten it")
        sys.exit(2)
    except (KeyboardInterrupt, click.Abort):
        render.error("interrupted; nothing was written")
        sys.exit(130)
    except BrokenPipeError:  # our reader went away (alamode run --json | head): stop quietly
        # Python's documented remedy: nothing more may reach the closed pipe at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(status)


def _dispatch(argv: list[str]) -> int:
    """Parse ``argv`` and run its command; the exit status."""
    _check_text(argv)
    if _State.debug or "--debug" in argv:
        _State.debug = True
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=hoist_global_options(argv), prog_name="alamode", standalone_mode=False
        )
    except click.exceptions.NoArgsIsHelpError as bare:  # the commands, and status 2
        typer.echo(bare.ctx.get_help())
        return 2
    except click.UsageError as err:
        _usage_error(err, argv)
    return result if isinstance(result, int) else 0


def _usage_error(err: click.UsageError, argv: list[str]) -> NoReturn:
    """A usage error in our form: one line naming the fix, exit status 2."""
    ctx = err.ctx
    where = ctx.command_path if ctx is not None else "alamode"
    message = err.format_message()
    param = getattr(err, "param", None)
    if isinstance(err, click.NoSuchOption):
        options = [o for p in ctx.command.params for o in p.opts] if ctx is not None else []
        close = did_you_mean(err.option_name, options)
        hint = f" ({close.removeprefix(', ')})" if close else ""
        message = f"unrecognized arguments: {' '.join(_with_values(err.option_name, argv))}{hint}"
    elif isinstance(err, click.MissingParameter) and param is not None:
        named = param.param_type_name == "option" or not param.metavar
        name = "/".join(param.opts) if named else param.metavar
        message = f"the following arguments are required: {name}"
    elif isinstance(err, click.BadParameter) and param is not None:
        message = f"argument {'/'.join(param.opts)}: {err.message}"
    elif message.startswith("No such command"):
        name = message.split("'")[1] if "'" in message else message
        names = list(getattr(ctx.command, "commands", {})) if ctx is not None else []
        message = f"no command {name!r}{did_you_mean(name, names)}"
    elif message.startswith("Got unexpected extra argument"):
        extra = message.split("(", 1)[1].rstrip(")") if "(" in message else message
        message = f"unrecognized arguments: {extra}"
    render.error(f"{where}: {message}; '{where} --help' shows the usage")
    sys.exit(2)


def _with_values(option: str, argv: list[str]) -> list[str]:
    """``option`` and the words that follow it in ``argv`` up to the next option: what a
    user meant as one unknown option and its values (``--jbos 3``)."""
    if option not in argv:
        return [option]
    after = argv[argv.index(option) + 1 :]
    values = [word for word in itertools.takewhile(lambda w: not w.startswith("-"), after)]
    return [option, *values]


def _check_text(argv: list[str]) -> None:
    """Every argument must be text: a byte that is not UTF-8 (Python keeps it as a lone
    surrogate) could be neither printed nor matched against a name."""
    for number, argument in enumerate(argv, 1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            raw = argument.encode("utf-8", "surrogateescape")
            raise AlamodeError(
                f"argument {number} ({str(raw)[2:-1]}) is not UTF-8 text; give task names, "
                "paths and options as UTF-8"
            ) from None
