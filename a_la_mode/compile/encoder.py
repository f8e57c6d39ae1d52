"""Compile task definitions into a Plan: validate them, order them, hash them.

Each output ID is the lowercase hex sha256 of ``bencode(spec ∪ {"inputs": {dep: dep_output}})``
-- the compatibility contract with the original a-la-mode. Tasks are hashed in topological
order, each exactly once, so compiling is linear in the size of the DAG (the original recursed
into every dependency again and again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from a_la_mode.compile import toposort
from a_la_mode.compile.bulk import paused_gc
from a_la_mode.compile.canonical import join_path, normalise
from a_la_mode.compile.naming import check_name, did_you_mean, input_clash, valid_name
from a_la_mode.compile.plan import Plan
from a_la_mode.compile.planfile import PLAN_FORMAT, output_id, task_parts
from a_la_mode.errors import DependencyError, SpecError


class TaskDef(NamedTuple):
    """One task as described by the user: its name, its spec, the names it depends on."""

    name: str
    spec: Mapping[str, Any]
    deps: Sequence[str] = ()


def compile_plan(meta: Mapping[str, Any], tasks: Iterable[TaskDef]) -> Plan:
    """Validate ``tasks`` and return their Plan; raise a SpecError naming what is wrong."""
    with paused_gc():
        return _compile(meta, tasks)


def _compile(meta: Mapping[str, Any], tasks: Iterable[TaskDef]) -> Plan:
    if not isinstance(meta, Mapping):
        raise SpecError(f"meta is a {type(meta).__name__}; it must be a dict such as {{}}")
    plain_meta = normalise(dict(meta), "meta")
    defs: dict[str, TaskDef] = {}
    entries: dict[str, dict[str, Any]] = {}
    for task in tasks:
        name = task.name
        if type(name) is not str or not valid_name(name):
            check_name(name)  # raises, saying what is wrong with it
        if name in defs:
            raise SpecError(f"task {name!r} is defined twice; give one of them another name")
        defs[name] = task
        entries[name] = _checked_spec(task)
    deps = {name: _checked_deps(task, defs) for name, task in defs.items()}
    order = toposort.levels(deps)

    outputs: dict[str, str] = {}
    parts: dict[str, tuple[bytes, bytes]] = {}
    for level in order:
        for name in level:
            entry = entries[name]
            entry["inputs"] = {dep: outputs[dep] for dep in deps[name]}
            try:
                head, tail = parts[name] = task_parts(entry)
            except (TypeError, ValueError, AttributeError, RecursionError):
                raise _explain(defs[name]) from None
            output = output_id(head, tail)
            entry["output"] = outputs[name] = output
    return Plan.trusted(
        parts=parts,
        format=PLAN_FORMAT,
        meta=plain_meta,
        tasks=entries,
        toposort=order,
        toposort_flatten=[name for level in order for name in level],
    )


def _spec_path(name: str) -> str:
    return join_path("tasks", name) + ".spec"


def _checked_spec(task: TaskDef) -> dict[str, Any]:
    """A private, plain copy of the task's spec; refuses non-dicts and reserved keys.

    Top-level str and int values (the usual spec) are copied as they are; encoding refuses
    what they cannot hold (lone surrogates, huge ints) and ``_explain`` says why.
    """
    spec = task.spec
    if not isinstance(spec, Mapping):
        raise SpecError(
            f"task {task.name!r} has a spec of type {type(spec).__name__}; "
            "a spec is a dict such as {'command': 'make all'}"
        )
    if "inputs" in spec or "output" in spec:
        key = "inputs" if "inputs" in spec else "output"
        raise SpecError(
            f"task {task.name!r} uses the reserved key {key!r} in its spec; "
            "a_la_mode fills it in (dependencies go in add_dep, >> or 'deps'): rename the key"
        )
    for key, value in spec.items():
        if type(key) is not str or (type(value) is not str and type(value) is not int):
            copied = normalise(spec, lambda: _spec_path(task.name))
            assert type(copied) is dict
            return copied
    return dict(spec)


def _explain(task: TaskDef) -> SpecError:
    """The error for a spec that encoding refused: find the offending value and its path."""
    try:
        normalise(task.spec, _spec_path(task.name))
    except SpecError as err:
        return err
    return SpecError(f"task {task.name!r}: its spec cannot be bencoded")


def _checked_deps(task: TaskDef, defs: Mapping[str, TaskDef]) -> Sequence[str]:
    """The task's dependency names; all must be other known tasks."""
    for dep in task.deps:
        if dep not in defs:
            others = [name for name in defs if name != task.name]  # never suggest a cycle
            raise DependencyError(
                f"task {task.name!r} depends on unknown task {dep!r}"
                + (did_you_mean(dep, others) or "; define it or remove the dependency")
            )
        if dep == task.name:
            raise DependencyError(f"task {task.name!r} depends on itself; remove that dependency")
    clash = input_clash(task.deps)
    if clash is not None:
        raise DependencyError(f"task {task.name!r}: {clash}")
    return task.deps
