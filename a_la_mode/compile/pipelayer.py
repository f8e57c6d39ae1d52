"""pipelayer-style directories: one template, and a folder per pipeline instance.

    pipelines/
      pipeline_definition.yaml    the template: a declarative spec with ${...} parameters
      daily-eu/                   an instance
        values.json               {"name": ..., "description": ..., "values": {param: value}}
        run                       what its tasks call
        tasks/                    the instance's scripts

Each instance compiles into a plan of its own: instances are pipelines of their own (their
values, their schedule), validated, pushed, run and diffed one by one, while tasks that come
out alike still share their outputs by ID. Every task of an instance lists ``run`` and
``tasks/`` as files (relative to the instance's folder), so editing ``tasks/load.sh`` reruns
that instance's tasks and no other instance's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from a_la_mode.compile.encoder import compile_plan
from a_la_mode.compile.images import SpecRewrite
from a_la_mode.compile.plan import Plan
from a_la_mode.compile.prepare import prepare_tasks
from a_la_mode.compile.sources import INSTANCE_VALUES, TEMPLATE, is_instance
from a_la_mode.errors import AlamodeError, SpecFileError

INSTANCE_FILES = ("run", "tasks/")  # hashed into every task of an instance


def instances(root: Path) -> list[Path]:
    """The instance folders of a pipelayer directory, by name."""
    return sorted(child for child in root.iterdir() if child.is_dir() and is_instance(child))


def compile_instance(
    folder: Path,
    rewrite: SpecRewrite | None = None,
    params: Mapping[str, str] | None = None,
    each: Mapping[str, list[str]] | None = None,
) -> Plan:
    """The plan of one instance: the template, with the instance's values (and ``params``,
    which win), its ``run`` and ``tasks/`` hashed into every task."""
    from a_la_mode.compile.specfile import load_declarative  # YAML only when needed

    name = folder.name
    template = folder.parent / TEMPLATE
    if not template.is_file():
        raise SpecFileError(f"instance {name}: no {TEMPLATE} in {folder.parent}")
    values = _values(folder)
    try:
        pipeline = load_declarative(template)
    except AlamodeError as err:
        raise type(err)(f"instance {name}: {err}") from None
    try:
        tasks = prepare_tasks(
            pipeline.task_defs(),
            pipeline.declared(),
            folder,  # an instance's files are its own
            matrix=pipeline.matrix,
            params={**values.get("values", {}), **(params or {})},
            each=each,
            rewrite=rewrite,
            more_files=[entry for entry in INSTANCE_FILES if (folder / entry).exists()],
        )
        meta = {**pipeline.meta, "instance": str(values.get("name", name))}
        if values.get("description"):
            meta["description"] = str(values["description"])
        return compile_plan(meta, tasks)
    except AlamodeError as err:
        raise type(err)(f"instance {name}: {TEMPLATE}: {err}") from None


def _values(folder: Path) -> dict[str, Any]:
    where = f"instance {folder.name}: {INSTANCE_VALUES}"
    try:
        values = json.loads((folder / INSTANCE_VALUES).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SpecFileError(f"{where}: {' '.join(str(err).split())}") from None
    if not isinstance(values, dict):
        raise SpecFileError(f"{where}: an object with name, description and values")
    unknown = sorted(set(values) - {"name", "description", "values"})
    if unknown:
        raise SpecFileError(f"{where}: unknown field {unknown[0]!r} (name, description, values)")
    given = values.get("values", {})
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise SpecFileError(f"{where}: values maps each parameter to text")
    return values


def check_all(root: Path) -> tuple[dict[str, Plan], list[str]]:
    """Every instance of a pipelayer directory compiled: the plans by instance, and every
    error (each naming its instance and file), all at once."""
    plans: dict[str, Plan] = {}
    errors: list[str] = []
    folders = instances(root)
    if not folders:
        errors.append(f"{root}: no instance folders (each holds a {INSTANCE_VALUES})")
    for folder in folders:
        try:
            plans[folder.name] = compile_instance(folder)
        except AlamodeError as err:
            errors.append(str(err))
    return plans, errors
