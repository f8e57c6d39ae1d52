"""The command line's shared parts: the typer app that commands are added to, the options
several commands take, the process-wide settings, and what most commands start with (a
store, a plan). Command modules import this, never main.py, so nothing imports in a circle."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple, NoReturn

import typer

from a_la_mode.cli import render
from a_la_mode.compile.bulk import keep_for_good
from a_la_mode.compile.images import SpecRewrite
from a_la_mode.compile.planfile import PlanBase, read_plan_file
from a_la_mode.compile.sources import is_spec_path, split_source
from a_la_mode.errors import AlamodeError, PlanError
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


app = typer.Typer(
    name="alamode",
    help=DESCRIPTION,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["--help", "-h"]},
    pretty_exceptions_enable=False,  # errors are one line (main.py); --debug shows tracebacks
)
"""The command line. Command modules add their commands to it (``@app.command()``); a
command's docstring is its help (the first paragraph in ``alamode --help``), and it returns
the exit status (None: 0)."""


def positive(text: str) -> int:
    """A whole number, at least 1 (for ``--jobs``, ``--limit``...)."""
    try:
        number = int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a whole number") from None
    if number < 1:
        raise typer.BadParameter(f"{number} is less than 1")
    return number


# Options and arguments several commands take, declared once.
SOURCE_HELP = "A spec file (file.py, file.py:dag_name, .json, .yaml, .toml) or a plan file."
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
StoreDir = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        metavar="STORE",
        help="Store directory or URL (default: $ALAMODE_STORE or .alamode).",
    ),
]
PlanSource = Annotated[
    str,
    typer.Argument(
        metavar="PLAN", help="A plan file or a spec file (compiled on the fly).", show_default=False
    ),
]
Source = Annotated[str, typer.Argument(metavar="SOURCE", help=SOURCE_HELP, show_default=False)]
Task = Annotated[str, typer.Argument(metavar="TASK", help="The task.", show_default=False)]
OutputOrTask = Annotated[
    str,
    typer.Argument(
        metavar="ID|TASK", help="An output ID (or unique prefix) or task name.", show_default=False
    ),
]
PARAMETERS = "Parameters"
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="NAME=VALUE",
        help="A value for the spec's parameter NAME (repeatable); the others keep their defaults.",
        show_default=False,
        rich_help_panel=PARAMETERS,
    ),
]
EvalParams = Annotated[
    list[str] | None,
    typer.Option(
        "--eval-param",
        "-E",
        metavar="NAME=EXPR",
        help="Every value of EXPR for parameter NAME, one instance of the pipeline each: "
        "days_range(-2, 0), dates('2026-11-01', '2026-11-30'), months_range(-1, 0), "
        "range(1, 4) or ['eu', 'us'] (repeatable: their cross product).",
        show_default=False,
        rich_help_panel=PARAMETERS,
    ),
]
Today = Annotated[
    str | None,
    typer.Option(
        "--today",
        metavar="DATE",
        help="The date days_range and months_range count from (default: today).",
        show_default=False,
        rich_help_panel=PARAMETERS,
    ),
]


class Values(NamedTuple):
    """What a command's parameter options said: ``--param``, ``--eval-param``, ``--today``."""

    params: list[str] | None = None
    each: list[str] | None = None
    today: str | None = None

    def given(self) -> bool:
        return bool(self.params or self.each)


NO_VALUES = Values()


def parameter_values(values: Values) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``--param`` values by name, and the values of each ``--eval-param`` expression."""
    from a_la_mode.compile.params import parse_assignments

    each: dict[str, list[str]] = {}
    if values.each:
        from a_la_mode.compile.expressions import evaluate, parse_today

        today = parse_today(values.today)
        for name, expression in parse_assignments(values.each, "--eval-param").items():
            try:
                each[name] = evaluate(expression, today)
            except AlamodeError as err:
                raise type(err)(f"--eval-param {name}={err}") from None
    return parse_assignments(values.params or []), each


def fail_with_all(errors: list[str], last: str) -> NoReturn:
    """Say every error, one line each, the last as the command's error (with ``last``
    added): exit status 2."""
    for error in errors[:-1]:
        render.error(error)
    raise AlamodeError(errors[-1] + last)


def store_at(path: str | None, create: bool = False, quiet: bool = False) -> Store:
    """The store for ``--store`` (or its default), with the ``--store-option`` settings.
    Only a command that writes to it (``create``) makes a directory store; for one that
    reads, a store that does not exist yet is an empty one, and the user is told so
    (unless ``quiet``)."""
    store = open_store(path, _State.store_options, create=create)
    if not store.exists and not quiet:
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


def open_source(
    source: str, rewrite: SpecRewrite | None = None, values: Values = NO_VALUES
) -> PlanBase:
    """Compile a spec file, or load and verify a plan file (or a plan's URL in a store).
    The plan lives as long as the command: the garbage collector no longer scans it.
    ``rewrite`` (a default image, pinning) and the parameters' ``values`` apply to spec
    files only: a plan's specs are hashed already, so they are refused for one."""
    plan = _open_source(source, rewrite, values)
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


def _open_source(source: str, rewrite: SpecRewrite | None, values: Values) -> PlanBase:
    if values.given() and not is_spec_path(source):
        raise AlamodeError(
            f"{source}: a plan's parameters are filled in already (they are part of its "
            "output IDs); give --param when compiling its spec ('alamode encode SPEC --param "
            "NAME=VALUE'), or run the spec file itself"
        )
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

        params, each = parameter_values(values)
        return compile_spec_file(source, rewrite, params, each)
    path = split_source(source)[0]
    if not path.exists():
        raise PlanError(
            f"{source}: no such file; give a plan file or a spec file "
            "(.py, .json, .yaml, .yml, .toml)"
        )
    return read_plan_file(path)
