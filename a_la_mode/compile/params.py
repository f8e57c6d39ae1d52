"""Pipeline parameters: ``${name}`` placeholders in spec strings, declared with defaults and
filled in before anything is hashed.

A spec string may hold ``${name}`` (a declared parameter) and ``$${`` (a literal ``${``).
Substitution is text replacement, nothing else: a value is never evaluated, and it lands in
the spec exactly where the user placed its placeholder. A task's output ID therefore depends
on the values of the parameters its spec uses, and on no others.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from a_la_mode.compile.canonical import join_path
from a_la_mode.compile.encoder import TaskDef
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.errors import SpecError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What a parameter may be called: an identifier."""
VALUE_IN_NAME = re.compile(r"[A-Za-z0-9_.:+-]+")
"""What an --eval-param value may be: it becomes part of task names (``fetch[day=2026-12-01]``)."""
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")  # a literal ``$${``, or a placeholder


class Param(NamedTuple):
    """A declared parameter: its default (None: a value must be given), and optionally the
    values it may take (``choices``) or a regular expression its value must match whole."""

    default: str | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    description: str = ""


class ParamError(SpecError):
    """A parameter is missing, unknown, undeclared or out of bounds."""


def declare(params: Mapping[str, Any] | None) -> dict[str, Param]:
    """Parameters as a Dag declares them: each a default (a string), None (no default: a
    value must be given), or a ``Param``."""
    declared: dict[str, Param] = {}
    for name, value in (params or {}).items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ParamError(
                f"parameter name {name!r} is not an identifier; use letters, digits and '_' "
                "(e.g. 'run_date')"
            )
        if value is None or isinstance(value, str):
            param = Param(default=value)
        elif isinstance(value, Param):
            param = value
        else:
            raise ParamError(
                f"parameter {name!r} has a default of type {type(value).__name__}; parameter "
                f"values are text: write {str(value)!r}"
            )
        declared[name] = _checked_declaration(name, param)
    return declared


def _checked_declaration(name: str, param: Param) -> Param:
    if param.choices is not None:
        param = param._replace(choices=tuple(str(choice) for choice in param.choices))
    if param.pattern is not None:
        try:
            re.compile(param.pattern)
        except re.error as err:
            raise ParamError(
                f"parameter {name!r}: pattern {param.pattern!r} is not valid: {err}"
            ) from None
    if param.default is not None:
        _check_value(name, param.default, param, "its default")
    return param


def parse_assignments(pairs: Iterable[str], option: str = "--param") -> dict[str, str]:
    """``NAME=VALUE`` pairs, as given on the command line; the last of a name wins."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not NAME.fullmatch(name):
            raise ParamError(f"{option} {pair!r}: write it as NAME=VALUE, e.g. {option} day=1")
        values[name] = value
    return values


def resolve(
    declared: Mapping[str, Param],
    given: Mapping[str, str],
    uses: Mapping[str, str] | None = None,
    option: str = "--param",
) -> dict[str, str]:
    """Every declared parameter's value: given, else its default; a parameter with neither
    is left out (an error only where a spec uses it). Refuses a value for a parameter that is
    not declared, or one outside its choices or pattern (naming, from ``uses``, where the
    parameter is first used: "task 'x': spec.command")."""
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ParamError(
                f"{option} {name}: no such parameter{did_you_mean(name, declared)} "
                f"(declared: {known})"
            )
    values = {}
    for name, param in declared.items():
        value = given.get(name, param.default)
        if value is not None:
            if name in given:
                label = f"{option} {name}={value}"
                if uses and name in uses:
                    label += f" ({uses[name]} uses it)"
                _check_value(name, value, param, label)
            values[name] = value
    return values


def _check_value(name: str, value: str, param: Param, where: str) -> None:
    if param.choices is not None and value not in param.choices:
        raise ParamError(
            f"{where}: parameter {name!r} is one of {', '.join(param.choices)}"
            f"{did_you_mean(value, param.choices)}"
        )
    if param.pattern is not None and not re.fullmatch(param.pattern, value):
        raise ParamError(f"{where}: parameter {name!r} must match {param.pattern!r}")


def substitute(
    task: str, spec: Mapping[str, Any], declared: Mapping[str, Param], values: Mapping[str, str]
) -> dict[str, Any]:
    """``spec`` with every placeholder in its strings replaced by its parameter's value."""

    def fill(value: Any, path: str) -> Any:
        if isinstance(value, str):
            return _fill_text(value, path) if "$" in value else value
        if isinstance(value, dict):
            return {key: fill(item, join_path(path, str(key))) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [fill(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    def _fill_text(text: str, path: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "${"  # $${ is a literal ${
            if name not in declared:
                close = did_you_mean(name, declared)
                raise ParamError(
                    f"task {task!r}: {path} uses ${{{name}}}, which is not a declared "
                    f"parameter{close}; declare it under params (or write $${{ for a literal "
                    "${)"
                )
            if name not in values:
                raise ParamError(
                    f"task {task!r}: {path} uses parameter {name!r}, which has no value and no "
                    f"default; give --param {name}=VALUE"
                )
            return values[name]

        return _TOKEN.sub(one, text)

    return {key: fill(value, f"spec.{key}") for key, value in spec.items()}


def apply(
    tasks: Iterable[TaskDef],
    declared: Mapping[str, Param],
    given: Mapping[str, str],
    each: Mapping[str, list[str]] | None = None,
) -> list[TaskDef]:
    """The tasks with their parameters filled in. With ``each`` (``--eval-param``: a list of
    values per parameter), one instance of the pipeline per combination of values; a task
    whose spec and upstream use none of them stays one task. A pipeline that declares no
    parameters is left as it is (its strings may hold a shell's ``${VAR}``), and takes no
    ``--param``."""
    tasks = list(tasks)
    each = each or {}
    if not declared:
        if given or each:
            name = next(iter({**given, **each}))
            option = "--param" if name in given else "--eval-param"
            raise ParamError(
                f"{option} {name}: this pipeline declares no parameters; declare them under "
                "params (a spec file) or Dag(params=...) (a Python one)"
            )
        return tasks
    both = sorted(set(given) & set(each))
    if both:
        raise ParamError(f"parameter {both[0]!r} is given by --param and by --eval-param; keep one")
    uses: dict[str, str] = {}
    for task in tasks:
        for name in sorted(used(task.spec)):
            uses.setdefault(name, f"task {task.name!r}")
    for name, options in each.items():  # checked as --param values are
        if not options:
            raise ParamError(f"parameter {name!r} is given an empty list of values")
        for option in options:
            resolve(declared, {name: option}, uses, "--eval-param")
    values = resolve(declared, given, uses)
    if not each:
        return [
            task._replace(spec=substitute(task.name, task.spec, declared, values)) for task in tasks
        ]
    return expand(tasks, declared, values, each)


def expand(
    tasks: list[TaskDef],
    declared: Mapping[str, Param],
    fixed: Mapping[str, str],
    each: Mapping[str, list[str]],
) -> list[TaskDef]:
    """One instance of each task per combination of ``each``'s values that its spec or its
    upstream uses, named ``task[name=value,...]``; instances that use none collapse into
    the task itself."""
    for name, options in each.items():
        for value in options:
            if not VALUE_IN_NAME.fullmatch(value):
                raise ParamError(
                    f"--eval-param {name}: value {value!r} cannot be part of a task name; "
                    "values are letters, digits, '.', '_', ':', '+' and '-'"
                )
    defs = {task.name: task for task in tasks}
    cone: dict[str, frozenset[str]] = {}  # the evaluated parameters a task depends on

    def cone_of(name: str, seen: tuple[str, ...] = ()) -> frozenset[str]:
        if name not in cone:
            if name in seen or name not in defs:
                return frozenset()  # a cycle or an unknown task: the compiler says which
            task = defs[name]
            found = used(task.spec) & set(each)
            for dep in task.deps:
                found |= cone_of(dep, (*seen, name))
            cone[name] = frozenset(found)
        return cone[name]

    names = list(each)
    instances: dict[str, TaskDef] = {}
    for combination in itertools.product(*(each[name] for name in names)):
        values = {**fixed, **dict(zip(names, combination, strict=True))}

        def instance(name: str, values: dict[str, str] = values) -> str:
            own = sorted(cone_of(name))
            if not own:
                return name
            return f"{name}[{','.join(f'{p}={values[p]}' for p in own)}]"

        for task in tasks:
            named = instance(task.name)
            if named not in instances:
                spec = substitute(named, task.spec, declared, values)
                deps = [instance(dep) if dep in defs else dep for dep in task.deps]
                instances[named] = TaskDef(named, spec, deps)
    return list(instances.values())


def used(spec: Mapping[str, Any]) -> set[str]:
    """The parameters ``spec``'s strings name."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if "${" in value:
                found.update(m.group(1) for m in _TOKEN.finditer(value) if m.group(1))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(spec)
    return found
