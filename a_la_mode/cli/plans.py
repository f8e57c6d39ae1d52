"""The commands that read and write plans: encode, show, validate, diff, graph, schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from a_la_mode.cli import render
from a_la_mode.cli.app import (
    JSON,
    SOURCE_HELP,
    arg,
    command,
    existing_store,
    image_options,
    open_source,
)
from a_la_mode.compile.sources import is_spec_path, split_source
from a_la_mode.errors import AlamodeError, SpecFileError
from a_la_mode.review.graph import FORMATS
from a_la_mode.review.queries import recompute_estimate


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
