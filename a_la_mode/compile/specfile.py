"""Spec files: a Python module holding one Dag, or a declarative JSON, YAML or TOML file.

Declarative files follow ``PipelineFile`` (``alamode schema`` prints its JSON Schema):

    meta: {schedule: "@daily"}
    tasks:
      download: {spec: {command: "fetch.sh"}}
      blur:     {deps: [download], spec: {command: "blur.sh"}}
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tomllib
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from a_la_mode.compile.datamake import DatamakeFlow, is_flow
from a_la_mode.compile.dsl import Dag
from a_la_mode.compile.encoder import TaskDef, compile_plan
from a_la_mode.compile.images import SpecRewrite
from a_la_mode.compile.naming import did_you_mean
from a_la_mode.compile.params import Param, declare
from a_la_mode.compile.plan import Plan
from a_la_mode.compile.prepare import prepare_tasks
from a_la_mode.compile.sources import PYTHON_SUFFIXES, SPEC_SUFFIXES, is_instance, split_source
from a_la_mode.errors import AlamodeError, SpecFileError


class TaskEntry(BaseModel):
    """One task of a declarative spec file."""

    model_config = ConfigDict(extra="forbid")

    deps: list[str] = Field(default_factory=list, description="Names of the tasks it needs.")
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="Hashed into the output ID: command, image, env, timeout, retries, any "
        "other key. Values: str, int, lists and dicts of them (no floats, booleans or nulls).",
    )


class ParamEntry(BaseModel):
    """One parameter of a declarative spec file: ``${name}`` in spec strings."""

    model_config = ConfigDict(extra="forbid")

    default: str | None = Field(default=None, description="Used when no --param gives one.")
    choices: list[str] | None = Field(default=None, description="The values it may take.")
    pattern: str | None = Field(default=None, description="A regular expression, matched whole.")
    description: str = Field(default="", description="What it is, for people.")

    def param(self) -> Param:
        choices = tuple(self.choices) if self.choices is not None else None
        return Param(self.default, choices, self.pattern, self.description)


class PipelineFile(BaseModel):
    """A declarative pipeline: the same thing a Python Dag describes."""

    model_config = ConfigDict(extra="forbid", title="a_la_mode pipeline spec file")

    format: Literal[1] = Field(default=1, description="Version of this spec-file schema.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Free-form pipeline metadata.")
    params: dict[str, ParamEntry] = Field(
        default_factory=dict,
        description="Parameters: name -> default, choices, pattern. Spec strings use them as "
        "${name} ($${ is a literal ${); values come from --param name=value.",
    )
    matrix: dict[str, list[str | int]] = Field(
        default_factory=dict,
        description="Parameter -> its values: one instance of the tasks that use it per "
        "combination of values, named task[name=value,...] (as --eval-param does).",
    )
    tasks: dict[str, TaskEntry] = Field(description="Task name -> its deps and spec.")

    def task_defs(self) -> list[TaskDef]:
        """The tasks as the compiler sees them."""
        return [TaskDef(name, entry.spec, entry.deps) for name, entry in self.tasks.items()]

    def declared(self) -> dict[str, Param]:
        """The parameters, checked."""
        return declare({name: entry.param() for name, entry in self.params.items()})


def compile_spec_file(
    source: str,
    rewrite: SpecRewrite | None = None,
    params: Mapping[str, str] | None = None,
    each: Mapping[str, list[str]] | None = None,
) -> Plan:
    """Compile the spec file ``source`` (``file.py``, ``file.py:name``, JSON, YAML or TOML)
    with its parameters' values (``params``, else their defaults; with ``each``, one instance
    per combination of those lists of values); ``rewrite`` changes each task's spec before it
    is hashed (a default image, pinning)."""
    path, attr = split_source(source)
    if is_instance(path):  # one instance of a pipelayer directory
        from a_la_mode.compile.pipelayer import compile_instance

        return compile_instance(path, rewrite, params, each)
    suffix = path.suffix.lower()
    if suffix not in SPEC_SUFFIXES:
        raise SpecFileError(
            f"{path}: unknown spec file type {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(SPEC_SUFFIXES)}"
        )
    if path.is_dir():
        raise SpecFileError(f"{path}: is a folder, not a spec file; give the file inside it")
    if not path.is_file():
        raise SpecFileError(f"{path}: no such spec file")
    matrix: Mapping[str, Sequence[str | int]]
    if suffix in PYTHON_SUFFIXES:
        dag = load_python_dag(path, attr or None)
        meta, defs, declared, matrix = dag.meta, dag.task_defs, dag.declared, dag.each
    else:
        pipeline = load_declarative(path)
        meta, defs, declared = pipeline.meta, pipeline.task_defs, pipeline.declared
        matrix = pipeline.matrix
    try:
        tasks = prepare_tasks(
            defs(), declared(), path.parent, matrix=matrix, params=params, each=each,
            rewrite=rewrite,
        )  # fmt: skip
        return compile_plan(meta, tasks)
    except AlamodeError as err:
        raise type(err)(f"{path}: {err}") from None


# -- Python spec files -------------------------------------------------------------------


def load_python_dag(path: Path, attr: str | None = None) -> Dag:
    """Run the module at ``path`` and return its one module-level Dag (or the one named)."""
    module_name = "alamode_spec_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpecFileError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the spec can import its neighbours
    try:
        spec.loader.exec_module(module)
    except AlamodeError as err:
        line = _user_line(err, path)
        raise type(err)(f"{path}{line}: {err}") from None
    except BaseException as err:  # the user's code failed: show their traceback, not ours
        if isinstance(err, KeyboardInterrupt):
            raise
        raise SpecFileError(
            f"{path} raised {type(err).__name__}: {err}; fix the spec file (traceback above)",
            user_traceback=_user_traceback(err, path),
        ) from None
    finally:
        sys.path.remove(folder)
    dags = {name: value for name, value in vars(module).items() if isinstance(value, Dag)}
    if attr is not None:
        if attr not in dags:
            raise SpecFileError(
                f"{path} has no module-level Dag named {attr!r}{did_you_mean(attr, dags)}"
            )
        return dags[attr]
    unique = {id(dag): name for name, dag in dags.items()}
    if not unique:
        raise SpecFileError(
            f"{path} defines no Dag at module level; add one, e.g. 'dag = Dag({{}})'"
        )
    if len(unique) > 1:
        names = ", ".join(sorted(unique.values()))
        first = sorted(unique.values())[0]
        raise SpecFileError(f"{path} defines several Dags ({names}); pick one as {path}:{first}")
    return dags[next(iter(unique.values()))]


def _user_frames(err: BaseException, path: Path) -> list[traceback.FrameSummary]:
    """The traceback frames that belong to the user's spec file (and what it called)."""
    frames = traceback.extract_tb(err.__traceback__)
    package = str(Path(__file__).parent)
    for index, frame in enumerate(frames):
        if Path(frame.filename).resolve() == path.resolve():
            return [f for f in frames[index:] if not f.filename.startswith(package)]
    return []


def _user_traceback(err: BaseException, path: Path) -> str:
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(_user_frames(err, path))
    lines += traceback.format_exception_only(type(err), err)
    return "".join(lines)


def _user_line(err: BaseException, path: Path) -> str:
    frames = [f for f in _user_frames(err, path) if Path(f.filename).resolve() == path.resolve()]
    return f":{frames[-1].lineno}" if frames else ""


# -- declarative spec files --------------------------------------------------------------


def load_declarative(path: Path) -> PipelineFile | DatamakeFlow:
    """Parse and validate a JSON, YAML or TOML spec file (or a datamake flow: JSON whose
    tasks are a list)."""
    text = _read_text(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            raw = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        elif suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raw = yaml.load(text, Loader=_StrictYamlLoader)
        if suffix != ".yaml" and suffix != ".yml":
            _check_depth(raw)  # YAML's loader checks as it goes
    except _DuplicateKey as err:
        raise SpecFileError(f"{path}: {err}; every name may appear once") from None
    except (_TooLarge, RecursionError) as err:
        why = str(err) if isinstance(err, _TooLarge) else _TooLarge.DEEP
        raise SpecFileError(f"{path}: {why}") from None
    except (ValueError, yaml.YAMLError) as err:
        where = " ".join(str(err).split())
        raise SpecFileError(f"{path}: not valid {suffix[1:].upper()}: {where}") from None
    if not isinstance(raw, dict):
        raise SpecFileError(f"{path}: the top level must be a mapping with a 'tasks' key")
    if suffix == ".json" and is_flow(raw):
        return DatamakeFlow(raw, str(path))
    try:
        return PipelineFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        hint = "see 'alamode schema' for the format"
        if first["type"] == "extra_forbidden" and first["loc"]:
            known = _fields_at(first["loc"][:-1])
            close = did_you_mean(str(first["loc"][-1]), known)
            if close:
                hint = close.removeprefix(", ") + f" (fields here: {', '.join(sorted(known))})"
                first["msg"] = "unknown field"
        raise SpecFileError(f"{path}: {loc}: {first['msg']}{more}; {hint}") from None


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The fields the file's format allows where ``loc`` points (top level, or a task)."""
    if not loc:
        return list(PipelineFile.model_fields)
    if loc[0] == "tasks" and len(loc) == 2:
        return list(TaskEntry.model_fields)
    return []


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecFileError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise SpecFileError(f"{path}: cannot read: {err.strerror}") from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {key!r}")
        result[key] = value
    return result


MAX_FILE_DEPTH = 100  # nesting a spec file may have (a spec value may have 64)
MAX_FILE_VALUES = 1_000_000  # values a YAML file may expand to through its aliases
MAX_FILE_TEXT = 100 << 20  # and characters: a long string repeated by aliases counts whole
TEXT_PER_VALUE = MAX_FILE_TEXT // MAX_FILE_VALUES  # a scalar weighs 1 + its length / this


class _TooLarge(ValueError):
    DEEP = f"nested more than {MAX_FILE_DEPTH} levels deep; a spec file is not that deep"
    WIDE = (
        f"expands to more than {MAX_FILE_VALUES:,} values (or {MAX_FILE_TEXT >> 20} MB of "
        "text) once its YAML aliases are expanded (anchors used over and over); write the "
        "values out, or use fewer aliases"
    )


def _check_depth(value: Any) -> None:
    """Refuse a parsed file nested past MAX_FILE_DEPTH (without recursing)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_FILE_DEPTH:
            raise _TooLarge(_TooLarge.DEEP)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _expanded_size(root: yaml.Node) -> int:
    """How many values the YAML node graph stands for once every alias is expanded,
    counted without expanding (each shared node once, memoised, without recursing)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            own = 1 + len(str(node.value)) // TEXT_PER_VALUE if not children else 1
            total = own + sum(sizes[id(child)] for child in children)
            sizes[id(node)] = total
            if total > MAX_FILE_VALUES:
                raise _TooLarge(_TooLarge.WIDE)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class _StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last, and
    files nested too deep or expanding too far through aliases (a "billion laughs")."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        depth = self._depth + 1
        if depth > MAX_FILE_DEPTH:
            raise _TooLarge(_TooLarge.DEEP)
        self._depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader reports unhashable keys itself
            if key in seen:
                line = key_node.start_mark.line + 1
                raise _DuplicateKey(f"duplicate key {key!r} on line {line}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
