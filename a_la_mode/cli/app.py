"""The command line's shared parts: how commands are declared (``@command`` and ``arg``),
the process-wide settings, and what most commands start with (a store, a plan). Command
modules import this, never main.py, so nothing imports in a circle."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

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
