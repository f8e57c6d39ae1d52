"""The commands that read and write plans: encode, show, validate, diff, graph, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from a_la_mode.cli import render
from a_la_mode.cli.app import (
    SOURCE_HELP,
    EvalParams,
    Json,
    Params,
    Source,
    Today,
    Values,
    app,
    existing_store,
    fail_with_all,
    image_options,
    open_source,
    parameter_values,
)
from a_la_mode.compile.sources import is_collection, is_spec_path, split_source
from a_la_mode.errors import AlamodeError, SpecFileError
from a_la_mode.review.graph import FORMATS
from a_la_mode.review.queries import recompute_estimate


@app.command()
def encode(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="SPEC",
            help="The spec file: file.py[:dag], .json, .yaml, .toml.",
            show_default=False,
        ),
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
    default_image: Annotated[
        str | None,
        typer.Option(
            "--default-image",
            metavar="IMAGE",
            help="Write this container image into every task with a command and no 'image' "
            "(it becomes part of their output IDs).",
            rich_help_panel="Images",
        ),
    ] = None,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    pin: Annotated[
        bool,
        typer.Option(
            "--pin",
            help="Replace each image tag with the digest it names now, asking the Docker daemon.",
            rich_help_panel="Images",
        ),
    ] = False,
    json_: Json = False,
) -> None:
    """Compile a spec file into a canonical bencoded plan file."""
    if not is_spec_path(spec):
        raise SpecFileError(
            f"{spec}: not a spec file (.py, .json, .yaml, .yml, .toml); "
            "'alamode validate' checks plan files"
        )
    from a_la_mode.compile.specfile import compile_spec_file

    params_, each_ = parameter_values(Values(params, each, today))
    plan = compile_spec_file(spec, image_options(default_image, pin), params_, each_)
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
    source: Source,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    json_: Json = False,
) -> None:
    """Show a plan's tasks in run order with their inputs and short output IDs."""
    plan = open_source(source, values=Values(params, each, today))
    if json_:
        render.json_out(render.plan_json(plan))
    else:
        render.plan_table(plan, source)


@app.command()
def validate(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE...", help=SOURCE_HELP + " Several may be given.", show_default=False
        ),
    ],
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    json_: Json = False,
) -> None:
    """Check spec or plan files without writing anything; exit 2 on the first bad one. A
    pipelayer directory is checked whole: every instance, every error said at once."""
    results = []
    for source in sources:
        if is_collection(Path(source)):
            results.extend(_check_collection(Path(source), json_))
            continue
        plan = open_source(source, values=Values(params, each, today))
        results.append({"source": source, "ok": True, **render.plan_summary(plan)})
        if not json_:
            render.note(
                f"ok: {source}: {render.count(len(plan.tasks), 'task')}, "
                f"plan {plan.digest[: render.SHORT_ID]}{render.join_point_note(plan)}"
            )
    if json_:
        render.json_out(results)


def _check_collection(root: Path, json_: bool) -> list[dict[str, object]]:
    """Every instance of a pipelayer directory checked; every error said, then exit 2."""
    from a_la_mode.compile.pipelayer import check_all  # compiling needs pydantic: lazily

    plans, errors = check_all(root)
    for name, plan in plans.items():
        if not json_:
            render.note(
                f"ok: {root / name}: {render.count(len(plan.tasks), 'task')}"
                f"{render.join_point_note(plan)}"
            )
    if errors:
        fail_with_all(errors, f" ({len(errors)} errors)" if len(errors) > 1 else "")
    return [
        {"source": str(root / name), "ok": True, **render.plan_summary(plan)}
        for name, plan in plans.items()
    ]


@app.command()
def diff(
    old: Annotated[
        str, typer.Argument(metavar="OLD", help="The old side: " + SOURCE_HELP, show_default=False)
    ],
    new: Annotated[
        str, typer.Argument(metavar="NEW", help="The new side: " + SOURCE_HELP, show_default=False)
    ],
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    json_: Json = False,
    stat: Annotated[bool, typer.Option("--stat", help="One line per task.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Also list the unchanged tasks.")] = False,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code", help="Exit 1 when the plans produce different outputs, 0 when the same."
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
) -> int:
    """What changed between two plans (or spec files), and why.

    Tasks whose output ID moved either changed themselves (spec or dependencies; the fields
    are shown) or changed because of upstream (the root causes and paths are shown).
    """
    plans = []
    for side, source in (("old", old), ("new", new)):
        try:
            plans.append(open_source(source, values=Values(params, each, today)))
        except AlamodeError as err:
            raise type(err)(f"{side} side: {err}") from None
    from a_la_mode.review.diff import diff_plans

    result = diff_plans(*plans)
    estimate = recompute_estimate(result, existing_store(store)) if store else None
    if json_:
        render.json_out({**result.to_json(), **({"store": estimate} if estimate else {})})
    elif stat:
        render.diff_stat(result, show_all)
    else:
        render.diff_report(result, show_all)
    if estimate and not json_:
        render.recompute_note(estimate)
    return 1 if exit_code and not result.same_outputs else 0


@app.command()
def graph(
    source: Source,
    params: Params = None,
    each: EvalParams = None,
    today: Today = None,
    format_: Annotated[
        Literal["dot", "mermaid"],
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="dot (Graphviz, the default) or mermaid.",
        ),
    ] = "dot",
) -> None:
    """Print the dependency graph as Graphviz dot or Mermaid."""
    render.text(FORMATS[format_](open_source(source, values=Values(params, each, today))))


@app.command()
def schema() -> None:
    """Print the JSON Schema of declarative spec files (JSON, YAML, TOML)."""
    from a_la_mode.compile.specfile import PipelineFile

    render.text(json.dumps(PipelineFile.model_json_schema(), indent=2))
