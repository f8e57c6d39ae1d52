"""The ``alamode`` command line. It only parses options and calls into the flow; output goes
through render.py. Every deliberate error is one line on stderr and exit status 2.

Commands are plain functions taking the parsed arguments, registered with ``@command``;
the parser is argparse, built when ``main`` runs. (typer and click took 35 ms of every
command line to import and dispatch: docs/benchmarks.md.)
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from a_la_mode import __version__

# Each command module registers its commands when imported; the order is --help's.
from a_la_mode.cli import plans as _plans  # noqa: F401
from a_la_mode.cli import render
from a_la_mode.cli import results as _results  # noqa: F401
from a_la_mode.cli import run as _run  # noqa: F401
from a_la_mode.cli.app import (
    COMMANDS,
    DESCRIPTION,
    _State,
)
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.errors import AlamodeError, SpecFileError


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in our form: one line naming the fix, exit status 2."""

    def error(self, message: str) -> NoReturn:
        unknown = _UNKNOWN_COMMAND.match(message)
        if unknown:  # argparse lists every command; the closest one helps more
            name = unknown.group(1)
            message = f"no command {name!r}{did_you_mean(name, COMMANDS)}"
        render.error(f"{self.prog}: {message}; '{self.prog} --help' shows the usage")
        sys.exit(2)


_UNKNOWN_COMMAND = re.compile(r"argument COMMAND: invalid choice: '(.*)' \(choose from")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Docstrings keep their paragraphs; option names get room before their help."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _global_options(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """--debug, --quiet and --store-option: taken before the command, and after it too
    (``alamode run PLAN -q``). After it they leave what was given before alone, unless
    given again; store options given in both places add up."""
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    group = parser.add_argument_group("global options") if after_command else parser
    group.add_argument("--debug", action="store_true", help="Show tracebacks for errors.", **unset)
    group.add_argument("--quiet", "-q", action="store_true", help="Only print results.", **unset)
    group.add_argument(
        "--store-option",
        "-O",
        action="append",
        dest="late_store_option" if after_command else "store_option",
        metavar="KEY=VALUE",
        help="KEY=VALUE for a URL store's filesystem, e.g. endpoint_url=http://127.0.0.1:9000 "
        "(repeatable; credentials belong in the environment or AWS config).",
        **(unset or {"default": []}),
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line: global options, then one sub-parser per command. With
    ``only``, the other commands are there by name and summary, without their arguments
    (building every command's arguments is most of the start-up of a short command)."""
    parser = _Parser(
        prog="alamode", description=DESCRIPTION, formatter_class=_Help, allow_abbrev=False
    )
    _global_options(parser, after_command=False)
    parser.add_argument(
        "--version", action="version", version=f"alamode {__version__}", help="Show the version."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (handler, arguments) in COMMANDS.items():
        doc = inspect.cleandoc(handler.__doc__ or "")
        summary = " ".join(doc.split("\n\n", 1)[0].split())
        if only is not None and name != only:
            commands.add_parser(name, help=summary)
            continue
        sub = commands.add_parser(
            name, help=summary, description=doc, formatter_class=_Help, allow_abbrev=False
        )
        for argument in arguments:
            sub.add_argument(*argument.names, **argument.options)
        _global_options(sub, after_command=True)
        sub.set_defaults(handler=handler, parser=sub)
    return parser


def _named_command(argv: list[str]) -> str | None:
    """The command ``argv`` names, when that is plain: its first word that is not an
    option, with no option before it that takes a value (--store-option); "" when there
    is no word at all (``--version``, ``--help``); None when it cannot tell."""
    for word in argv:
        if word in ("-O", "--store-option"):
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return ""


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> NoReturn:
    """The usage error for arguments ``parser`` does not take, with the closest option."""
    first = extra[0]
    hint = ""
    if first.startswith("-"):
        options = [name for action in parser._actions for name in action.option_strings]
        close = did_you_mean(first.split("=", 1)[0], options)  # ", did you mean '--x'?"
        hint = f" ({close.removeprefix(', ')})" if close else ""
    parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


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
    except KeyboardInterrupt:
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
    named = _named_command(argv)
    parser = build_parser(only=named)
    if not argv:
        parser.print_help()
        return 2
    args, extra = parser.parse_known_args(argv)
    if named is not None and (args.command or "") != named:  # not so plain after all
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, which knows its options
        _unrecognized(getattr(args, "parser", parser), extra)
    _State.debug = args.debug
    render.Settings.quiet = args.quiet
    _State.store_options = parse_store_options(
        args.store_option + getattr(args, "late_store_option", [])
    )
    if args.command is None:  # only global options
        parser.error("give a command")
    status: int | None = args.handler(args)
    return status or 0


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
