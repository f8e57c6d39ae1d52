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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeVar

from a_la_mode import __version__
from a_la_mode.cli import render
from a_la_mode.compile.bulk import keep_for_good
from a_la_mode.compile.images import SpecRewrite
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.compile.planfile import PlanBase, read_plan_file
from a_la_mode.compile.sources import is_spec_path, split_source
from a_la_mode.errors import AlamodeError, PlanError, SpecFileError
from a_la_mode.review.graph import FORMATS
from a_la_mode.review.queries import recompute_estimate
from a_la_mode.store.contract import Store
from a_la_mode.store.directory import open_store
from a_la_mode.store.remote import load_plan_url

DESCRIPTION = """\
Pure data pipelines that never repeat work and never lose old results.

Compile a pipeline (a Python Dag or a JSON/YAML/TOML spec file) into a canonical,
content-addressed plan, then run it: only tasks with no recorded success run."""


class _State:
    debug = False
    store_options: dict[str, Any] = {}  # noqa: RUF012 - set once per process, by main


# -- how commands are declared ---------------------------------------------------------------


class Arg(NamedTuple):
    """One argument or option of a command: ``argparse.add_argument(*names, **options)``."""

    names: tuple[str, ...]
    options: dict[str, Any]


def arg(*names: str, **options: Any) -> Arg:
    return Arg(names, options)


Handler = Callable[[argparse.Namespace], "int | None"]
H = TypeVar("H", bound=Handler)
COMMANDS: dict[str, tuple[Handler, tuple[Arg, ...]]] = {}  # in the order --help lists them


def command(*arguments: Arg) -> Callable[[H], H]:
    """Register a function as the command of its name (``format_`` is ``format``). Its
    docstring is its help: the first paragraph in ``alamode --help``, all of it in its own
    ``--help``. It returns the exit status (None: 0)."""

    def register(handler: H) -> H:
        COMMANDS[handler.__name__.rstrip("_").replace("_", "-")] = (handler, arguments)
        return handler

    return register


def positive(text: str) -> int:
    """An argparse type: a whole number, at least 1."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is less than 1")
    return number


JSON = arg("--json", action="store_true", help="Print JSON for scripts.")
SOURCE_HELP = "A spec file (file.py, file.py:dag_name, .json, .yaml, .toml) or a plan file."


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


def store_at(path: str | None, create: bool = False) -> Store:
    """The store for ``--store`` (or its default), with the ``--store-option`` settings.
    Only a command that writes to it (``create``) makes a directory store; for one that
    reads, a store that does not exist yet is an empty one, and the user is told so."""
    store = open_store(path, _State.store_options, create=create)
    if not store.exists:
        render.note(f"no store at {store.where} yet: nothing has run there")
    return store


def existing_store(path: str | None) -> Store:
    """``store_at`` for a command that reports on the store itself: one that does not exist
    is an error, not an empty report."""
    store = open_store(path, _State.store_options, create=False)
    if not store.exists:
        raise AlamodeError(
            f"no store at {store.where}: nothing has run there; 'alamode run' makes one, and "
            "--store or $ALAMODE_STORE names another"
        )
    return store


def open_source(source: str, rewrite: SpecRewrite | None = None) -> PlanBase:
    """Compile a spec file, or load and verify a plan file (or a plan's URL in a store).
    The plan lives as long as the command: the garbage collector no longer scans it.
    ``rewrite`` (a default image, pinning) applies to spec files only: a plan's specs are
    hashed already, so it is refused for one."""
    plan = _open_source(source, rewrite)
    keep_for_good()
    return plan


def image_options(default_image: str | None, pin: bool) -> SpecRewrite | None:
    """The compile-time rewrite ``--default-image`` and ``--pin`` ask for, if any."""
    if default_image is None and not pin:
        return None
    from a_la_mode.compile.images import image_rewrite

    pinner = None
    if pin:
        from a_la_mode.run.plugins import load_engine

        docker = load_engine("docker")
        pinner = docker.pin  # type: ignore[attr-defined]
    return image_rewrite(default_image, pinner)


def _open_source(source: str, rewrite: SpecRewrite | None = None) -> PlanBase:
    if rewrite is not None and not is_spec_path(source):
        raise AlamodeError(
            f"{source}: a plan's images are part of its output IDs already; give "
            "--default-image or --pin when compiling its spec ('alamode encode SPEC "
            "--default-image IMAGE'), or run the spec file itself"
        )
    if "://" in source:
        return load_plan_url(source, _State.store_options)
    if is_spec_path(source):
        from a_la_mode.compile.specfile import (
            compile_spec_file,  # YAML and its models only when needed
        )

        return compile_spec_file(source, rewrite)
    path = split_source(source)[0]
    if not path.exists():
        raise PlanError(
            f"{source}: no such file; give a plan file or a spec file "
            "(.py, .json, .yaml, .yml, .toml)"
        )
    return read_plan_file(path)


@command(
    arg("spec", metavar="SPEC", help="The spec file: file.py[:dag], .json, .yaml, .toml."),
    arg(
        "--output",
        "-o",
        metavar="FILE",
        help="Plan file to write ('-' for stdout). "
        "Default: <spec name>.plan.bencode in the current directory.",
    ),
    arg(
        "--default-image",
        metavar="IMAGE",
        help="Write this container image into every task with a command and no 'image' "
        "(it becomes part of their output IDs).",
    ),
    arg(
        "--pin",
        action="store_true",
        help="Replace each image tag with the digest it names now, asking the Docker daemon.",
    ),
    JSON,
)
def encode(args: argparse.Namespace) -> None:
    """Compile a spec file into a canonical bencoded plan file."""
    spec, output = args.spec, args.output
    if not is_spec_path(spec):
        raise SpecFileError(
            f"{spec}: not a spec file (.py, .json, .yaml, .yml, .toml); "
            "'alamode validate' checks plan files"
        )
    from a_la_mode.compile.specfile import compile_spec_file

    plan = compile_spec_file(spec, image_options(args.default_image, args.pin))
    if output == "-":
        sys.stdout.buffer.writelines(plan.iter_bytes())
        return
    target = Path(output or split_source(spec)[0].stem + ".plan.bencode")
    try:
        plan.save(target)
    except OSError as err:
        raise AlamodeError(f"cannot write {target}: {err.strerror}") from None
    summary = {"path": str(target), **render.plan_summary(plan)}
    if args.json:
        render.json_out(summary)
    else:
        render.note(
            f"wrote {target}: {render.count(summary['tasks'], 'task')}, "
            f"plan {plan.digest[: render.SHORT_ID]}"
        )


@command(arg("source", metavar="SOURCE", help=SOURCE_HELP), JSON)
def show(args: argparse.Namespace) -> None:
    """Show a plan's tasks in run order with their inputs and short output IDs."""
    plan = open_source(args.source)
    if args.json:
        render.json_out(render.plan_json(plan))
    else:
        render.plan_table(plan, args.source)


@command(
    arg("sources", nargs="+", metavar="SOURCE", help=SOURCE_HELP + " Several may be given."), JSON
)
def validate(args: argparse.Namespace) -> None:
    """Check spec or plan files without writing anything; exit 2 on the first bad one."""
    results = []
    for source in args.sources:
        plan = open_source(source)
        results.append({"source": source, "ok": True, **render.plan_summary(plan)})
        if not args.json:
            render.note(
                f"ok: {source}: {render.count(len(plan.tasks), 'task')}, "
                f"plan {plan.digest[: render.SHORT_ID]}"
            )
    if args.json:
        render.json_out(results)


@command(
    arg("old", metavar="OLD", help="The old side: " + SOURCE_HELP),
    arg("new", metavar="NEW", help="The new side: " + SOURCE_HELP),
    JSON,
    arg("--stat", action="store_true", help="One line per task."),
    arg("--all", dest="show_all", action="store_true", help="Also list the unchanged tasks."),
    arg(
        "--exit-code",
        action="store_true",
        help="Exit 1 when the plans produce different outputs, 0 when the same.",
    ),
    arg(
        "--store",
        "-s",
        metavar="STORE",
        help="Say which new outputs this store already has, "
        "and the estimated time to compute the rest.",
    ),
)
def diff(args: argparse.Namespace) -> int:
    """What changed between two plans (or spec files), and why.

    Tasks whose output ID moved either changed themselves (spec or dependencies; the fields
    are shown) or changed because of upstream (the root causes and paths are shown).
    """
    plans = []
    for side, source in (("old", args.old), ("new", args.new)):
        try:
            plans.append(open_source(source))
        except AlamodeError as err:
            raise type(err)(f"{side} side: {err}") from None
    from a_la_mode.review.diff import diff_plans

    result = diff_plans(*plans)
    estimate = recompute_estimate(result, existing_store(args.store)) if args.store else None
    if args.json:
        render.json_out({**result.to_json(), **({"store": estimate} if estimate else {})})
    elif args.stat:
        render.diff_stat(result, args.show_all)
    else:
        render.diff_report(result, args.show_all)
    if estimate and not args.json:
        render.recompute_note(estimate)
    return 1 if args.exit_code and not result.same_outputs else 0


@command(
    arg("source", metavar="SOURCE", help=SOURCE_HELP),
    arg(
        "--format",
        "-f",
        choices=sorted(FORMATS),
        default="dot",
        metavar="FORMAT",
        help="dot (Graphviz, the default) or mermaid.",
    ),
)
def graph(args: argparse.Namespace) -> None:
    """Print the dependency graph as Graphviz dot or Mermaid."""
    render.text(FORMATS[args.format](open_source(args.source)))


@command()
def schema(args: argparse.Namespace) -> None:
    """Print the JSON Schema of declarative spec files (JSON, YAML, TOML)."""
    from a_la_mode.compile.specfile import PipelineFile

    render.text(json.dumps(PipelineFile.model_json_schema(), indent=2))


# The commands of these modules register themselves when imported.
from a_la_mode.cli import results as _results  # noqa: E402, F401
from a_la_mode.cli import run as _run  # noqa: E402, F401


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
