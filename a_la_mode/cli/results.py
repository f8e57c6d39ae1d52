"""``alamode path`` and ``alamode cat``: where a task's result is, and what it says.
Registered as commands of cli.py."""

from __future__ import annotations

import argparse
import sys

from a_la_mode.cli.app import arg, command, open_source, store_at
from a_la_mode.cli.run import PLAN, STORE, settled
from a_la_mode.errors import AlamodeError
from a_la_mode.review.queries import known_task, result_folder
from a_la_mode.store.remote import store_of

TASK = arg("task", metavar="TASK", help="The task whose output to find.")


@command(PLAN, TASK, STORE)
def path(args: argparse.Namespace) -> None:
    """Print the folder holding TASK's output for this plan (a blob store's output is
    fetched into this machine's cache first)."""
    plan = open_source(args.source)
    known_task(plan, args.task)
    store = settled(store_at(args.store or store_of(args.source), create=False))
    sys.stdout.write(f"{result_folder(plan, store, args.task)}\n")


@command(
    PLAN,
    TASK,
    arg("file", nargs="?", metavar="FILE", help="The file to print (the only one, if left out)."),
    STORE,
)
def cat(args: argparse.Namespace) -> None:
    """Print a file of TASK's output for this plan."""
    plan = open_source(args.source)
    known_task(plan, args.task)
    store = settled(store_at(args.store or store_of(args.source), create=False))
    folder = result_folder(plan, store, args.task)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    name = args.file
    if name is None:
        if len(files) != 1:
            listed = ", ".join(files[:10]) + (" …" if len(files) > 10 else "")
            raise AlamodeError(
                f"task {args.task!r} has {len(files)} files; name one: {listed or '(none)'}"
            )
        name = files[0]
    if name not in files:
        from a_la_mode.compile.naming import did_you_mean

        raise AlamodeError(
            f"task {args.task!r} has no file {name!r}{did_you_mean(name, files)}; "
            f"'alamode path {args.source} {args.task}' shows where its output is"
        )
    sys.stdout.buffer.write((folder / name).read_bytes())
