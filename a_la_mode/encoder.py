"""Compile task definitions into a Plan: validate them, order them, hash them.

Each output ID is the lowercase hex sha256 of ``bencode(spec ∪ {"inputs": {dep: dep_output}})``
-- the compatibility contract with the original a-la-mode. Tasks are hashed in topological
order, each exactly once, so compiling is linear in the size of the DAG (the original recursed
into every dependency again and again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import toposort
from .canonical import encode, join_path, normalise
from .errors import DependencyError, SpecError
from .naming import check_name, did_you_mean
from .plan import PLAN_FORMAT, Plan

RESERVED_KEYS = ("inputs", "output")


@dataclass(frozen=True)
class TaskDef:
    """One task as described by the user: its name, its spec, the names it depends on."""

    name: str
    spec: Mapping[str, Any]
    deps: Sequence[str] = field(default_factory=tuple)


def compile_plan(meta: Mapping[str, Any], tasks: Iterable[TaskDef]) -> Plan:
    """Validate ``tasks`` and return their Plan; raise a SpecError naming what is wrong."""
    if not isinstance(meta, Mapping):
        raise SpecError(f"meta is a {type(meta).__name__}; it must be a dict such as {{}}")
    plain_meta = normalise(dict(meta), "meta")
    defs: dict[str, TaskDef] = {}
    for task in tasks:
        check_name(task.name)
        if task.name in defs:
            raise SpecError(
                f"task {task.name!r} is defined twice; give one of them another name"
            )
        defs[task.name] = task
    entries = {name: _checked_spec(task) for name, task in defs.items()}
    deps = {name: _checked_deps(task, defs) for name, task in defs.items()}
    order = toposort.levels(deps)

    outputs: dict[str, str] = {}
    for level in order:
        for name in level:
            entry = entries[name]
            entry["inputs"] = {dep: outputs[dep] for dep in deps[name]}
            output = hashlib.sha256(encode(entry)).hexdigest()
            entry["output"] = outputs[name] = output
    return Plan.trusted(
        format=PLAN_FORMAT,
        meta=plain_meta,
        tasks=entries,
        toposort=order,
        toposort_flatten=[name for level in order for name in level],
    )


def _task_path(name: str) -> str:
    return join_path("tasks", name)


def _checked_spec(task: TaskDef) -> dict[str, Any]:
    """A private, plain copy of the task's spec; refuses non-dicts and reserved keys."""
    spec = task.spec
    if not isinstance(spec, Mapping):
        raise SpecError(
            f"task {task.name!r} has a spec of type {type(spec).__name__}; "
            "a spec is a dict such as {'command': 'make all'}"
        )
    for key in RESERVED_KEYS:
        if key in spec:
            raise SpecError(
                f"task {task.name!r} uses the reserved key {key!r} in its spec; "
                "a_la_mode fills it in (dependencies go in add_dep, >> or 'deps'): rename the key"
            )
    copied = normalise(dict(spec), _task_path(task.name) + ".spec")
    assert isinstance(copied, dict)
    return copied


def _checked_deps(task: TaskDef, defs: Mapping[str, TaskDef]) -> list[str]:
    names = list(task.deps)
    for dep in names:
        if dep == task.name:
            raise DependencyError(
                f"task {task.name!r} depends on itself; remove that dependency"
            )
        if dep not in defs:
            raise DependencyError(
                f"task {task.name!r} depends on unknown task {dep!r}"
                f"{did_you_mean(dep, defs)}"
            )
    return names
