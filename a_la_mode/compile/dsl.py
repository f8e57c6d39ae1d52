"""The Python DSL: a Dag of named Tasks with dependencies, in the original a-la-mode style.

    dag = Dag({"schedule": "@daily"})
    dag.task("download", {"command": "fetch.sh"})
    dag.task("blur", {"command": "blur.sh"}).add_dep(dag.download)

and the forms a modern user expects: ``a >> b``, ``[a, b] >> c``, ``dag["name-with-dashes"]``,
``with Dag() as dag: Task("x", {...})``, the ``@dag.define`` decorator, and groups whose tasks
compile to qualified names such as ``ingest.fetch``. Specs stay mutable until ``compile``.
"""

from __future__ import annotations

import contextlib
import os
import pprint
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from a_la_mode.compile.bulk import paused_gc
from a_la_mode.compile.encoder import TaskDef, compile_plan
from a_la_mode.compile.functions import check_function, function_spec
from a_la_mode.compile.naming import check_name, did_you_mean
from a_la_mode.compile.params import Param, declare
from a_la_mode.compile.plan import Plan, load_plan
from a_la_mode.compile.prepare import prepare_tasks
from a_la_mode.errors import SpecError


def pp(value: object) -> None:
    """Pretty-print with indent 2, as the original a-la-mode's ``pp`` (to the current stdout)."""
    pprint.PrettyPrinter(indent=2).pprint(value)


Nodes: TypeAlias = "Task | TaskGroup | Sequence[Task | TaskGroup]"

# Dags and groups entered with ``with``: Task(...) made inside joins the innermost one.
_ACTIVE: list[TaskGroup] = []


class UnknownTaskError(SpecError, KeyError, AttributeError):
    """No task of that name; the message suggests the closest one."""

    def __str__(self) -> str:
        return str(self.args[0])


class Task:
    """A named unit of work: a spec (a dict, hashed into the output ID) and its dependencies."""

    def __init__(
        self,
        name: str,
        spec: Mapping[str, Any] | None = None,
        deps: Sequence[Task] = (),
    ) -> None:
        check_name(name)
        self.name = name
        self.spec: dict[str, Any] = dict(spec) if spec is not None else {}
        self.deps: list[Task] = []
        self.add_dep(*deps)
        if _ACTIVE:
            _ACTIVE[-1]._adopt(self)

    def add_dep(self, *others: Task) -> Task:
        """Make this task depend on ``others`` (their outputs become its inputs)."""
        for other in others:
            if not isinstance(other, Task):
                raise SpecError(
                    f"task {self.name!r} cannot depend on {other!r}; dependencies are Tasks"
                )
            if other not in self.deps:
                self.deps.append(other)
        return self

    def __rshift__(self, other: Nodes) -> Nodes:
        """``a >> b``: b depends on a. Returns b, so chains read left to right."""
        for task in _entry_tasks(other):
            task.add_dep(self)
        return other

    def __lshift__(self, other: Nodes) -> Nodes:
        """``a << b``: a depends on b."""
        self.add_dep(*_exit_tasks(other))
        return other

    def __rrshift__(self, other: Sequence[Task | TaskGroup]) -> Task:
        """``[a, b] >> c``: c depends on a and b."""
        self.add_dep(*_exit_tasks(other))
        return self

    def __rlshift__(self, other: Sequence[Task | TaskGroup]) -> Task:
        """``[a, b] << c``: a and b depend on c."""
        for task in _entry_tasks(other):
            task.add_dep(self)
        return self

    def compiled_spec(self) -> Mapping[str, Any]:
        """The spec as it is hashed."""
        return self.spec

    def __repr__(self) -> str:
        deps = ", ".join(dep.name for dep in self.deps)
        return f"Task({self.name!r}, {self.spec!r}, deps=[{deps}])"


class FunctionTask(Task):
    """A task whose body is a Python function (compile/functions.py): its spec holds the
    function's import path and its code's digests, worked out at compile time, when the
    function's module has been imported whole."""

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        deps: Sequence[Task] = (),
        args: Mapping[str, Any] | None = None,
        modules: Sequence[str] = (),
        spec: Mapping[str, Any] | None = None,
    ) -> None:
        self.func, self.args, self.modules = func, args, tuple(modules)
        super().__init__(name, spec, deps)

    def compiled_spec(self) -> Mapping[str, Any]:
        try:
            return function_spec(self.func, self.args, self.modules, self.spec)
        except SpecError as err:
            raise SpecError(f"task {self.name!r}: {err}") from None


class TaskGroup:
    """Tasks under a common name prefix (mara's sub-pipelines): ``group.task``.

    ``group >> task`` makes ``task`` depend on the group's last tasks (those nothing in the
    group depends on); ``task >> group`` makes the group's first tasks depend on ``task``.
    Both use the group's tasks as they are at that moment.
    """

    def __init__(self, dag: Dag, prefix: str) -> None:
        self._dag = dag
        self.prefix = prefix
        self.members: list[Task] = []

    def _qualified(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _adopt(self, task: Task) -> None:
        task.name = check_name(self._qualified(task.name))
        self._dag._register(task)
        group: TaskGroup | None = self
        while group is not None and group is not self._dag:
            group.members.append(task)
            group = group._parent
        self._dag.members.append(task)

    _parent: TaskGroup | None = None

    def task(
        self, name: str, spec: Mapping[str, Any] | None = None, deps: Sequence[Task] = ()
    ) -> Task:
        """Define a task in this group; returns it."""
        _ACTIVE.append(self)
        try:
            return Task(name, spec, deps)
        finally:
            _ACTIVE.pop()

    @contextlib.contextmanager
    def group(self, name: str) -> Iterator[TaskGroup]:
        """A nested group: tasks made in it are named ``<this prefix>.<name>.<task>``."""
        child = TaskGroup(self._dag, self._qualified(check_name(name)))
        child._parent = self if self is not self._dag else None
        _ACTIVE.append(child)
        try:
            yield child
        finally:
            _ACTIVE.remove(child)

    def define(
        self, name: str | None = None, deps: Sequence[Task] = ()
    ) -> Callable[[Callable[[], Mapping[str, Any]]], Task]:
        """Decorator: the function returns the spec; its name (or ``name``) names the task.

        @dag.define(deps=[download])
        def blur():
            return {"command": "blur.sh"}
        """

        def register(make_spec: Callable[[], Mapping[str, Any]]) -> Task:
            return self.task(name or make_spec.__name__, make_spec(), deps)

        return register

    def function(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        deps: Sequence[Task] = (),
        args: Mapping[str, Any] | None = None,
        modules: Sequence[str] = (),
        spec: Mapping[str, Any] | None = None,
    ) -> Any:
        """A task whose body is ``func(output, inputs, **args)``: ``output`` is the folder
        to write into, ``inputs`` maps each dependency's name to its output folder. Called
        with the function, returns the Task; with no function, it is a decorator that
        returns the function unchanged (the task is ``dag[name]``):

            count = dag.function(count_words, deps=[download], args={"top": 10})

            @dag.function(deps=[download])        # in a module workers can import
            def count_words(output, inputs): ...

        ``modules`` are more modules of yours whose code the function relies on: their
        source is hashed too. ``spec`` adds keys such as ``retries`` or ``timeout``."""

        def register(target: Callable[..., Any]) -> Task:
            task_name = str(name or getattr(target, "__name__", ""))
            try:
                check_function(target)
            except SpecError as err:
                raise SpecError(f"task {task_name!r}: {err}") from None
            _ACTIVE.append(self)
            try:
                return FunctionTask(task_name, target, deps, args, modules, spec)
            finally:
                _ACTIVE.pop()

        if func is not None:
            return register(func)

        def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
            register(target)
            return target

        return decorate

    def __getattr__(self, name: str) -> Task:
        if name.startswith("_"):  # private and dunder lookups never mean a task
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Task:
        for task in self.members:
            if task.name in (name, self._qualified(name)):
                return task
        known = [task.name for task in self.members]
        raise UnknownTaskError(f"no task {name!r}{did_you_mean(self._qualified(name), known)}")

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self.members))

    def __len__(self) -> int:
        return len(self.members)

    def __rshift__(self, other: Nodes) -> Nodes:
        for task in _entry_tasks(other):
            task.add_dep(*_exit_tasks(self))
        return other

    def __rrshift__(self, other: Nodes) -> TaskGroup:
        for task in _entry_tasks(self):
            task.add_dep(*_exit_tasks(other))
        return self

    __lshift__ = __rrshift__
    __rlshift__ = __rshift__

    def __repr__(self) -> str:
        return f"TaskGroup({self.prefix!r}, {len(self.members)} tasks)"


class Dag(TaskGroup):
    """A pipeline: ``meta`` (hashed into the plan, not into output IDs), its parameters and
    its tasks. ``params`` declares the ``${name}`` placeholders its specs may hold: each a
    default (text), None (a value must be given), or a ``Param`` (with choices or a
    pattern); values are given to ``compile`` (``alamode ... --param name=value``)."""

    def __init__(
        self,
        meta: Mapping[str, Any] | None = None,
        tasks: Sequence[Task] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(self, "")
        self.meta: dict[str, Any] = dict(meta) if meta is not None else {}
        self.params = declare(params)
        self.each: dict[str, list[str]] = {}  # matrix(): values to make an instance for
        self._by_name: dict[str, Task] = {}
        for task in tasks:
            self.add(task)

    @property
    def spec(self) -> dict[str, Any]:
        """The meta dict, under the name the original a-la-mode gave it."""
        return self.meta

    @property
    def tasks(self) -> list[Task]:
        """All tasks, in the order they were defined."""
        return list(self.members)

    def add(self, task: Task) -> Task:
        """Add a Task made outside this Dag; returns it."""
        self._register(task)
        self.members.append(task)
        return task

    def _register(self, task: Task) -> None:
        if task.name in self._by_name:
            raise SpecError(f"task {task.name!r} is defined twice; give one of them another name")
        self._by_name[task.name] = task

    def __getitem__(self, name: str) -> Task:
        task = self._by_name.get(name)
        if task is None:
            raise UnknownTaskError(f"no task {name!r}{did_you_mean(name, self._by_name)}")
        return task

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __enter__(self) -> Dag:
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)

    # -- compiling ---------------------------------------------------------------------

    def task_defs(self) -> list[TaskDef]:
        """The tasks as the compiler sees them; refuses dependencies outside this Dag."""
        defs = []
        for task in self.members:
            for dep in task.deps:
                if self._by_name.get(dep.name) is not dep:
                    raise SpecError(
                        f"task {task.name!r} depends on {dep.name!r}, which is not a task of "
                        "this Dag; create it with dag.task(...) or dag.add(task)"
                    )
            defs.append(TaskDef(task.name, task.compiled_spec(), [dep.name for dep in task.deps]))
        return defs

    def declared(self) -> dict[str, Param]:
        """The parameters this Dag declares."""
        return self.params

    def matrix(self, **values: Sequence[str | int]) -> Dag:
        """Make one instance of the pipeline per combination of these parameters' values
        (``dag.matrix(day=["2026-12-01", "2026-12-02"], region=["eu", "us"])``), as
        ``--eval-param`` does: tasks that use none of them stay one task. Returns the Dag."""
        for name, options in values.items():
            if name not in self.params:
                raise SpecError(
                    f"matrix: {name!r} is not a parameter of this Dag"
                    f"{did_you_mean(name, self.params)}; declare it in Dag(params=...)"
                )
            if isinstance(options, str) or not options:
                raise SpecError(f"matrix: {name}= takes a non-empty list of values")
            self.each[name] = [str(option) for option in options]
        return self

    def compile(
        self,
        params: Mapping[str, str] | None = None,
        each: Mapping[str, list[str]] | None = None,
    ) -> Plan:
        """Validate the Dag and return its Plan (output IDs computed), its parameters filled
        in with ``params`` (else their defaults), one instance per combination of the
        ``matrix`` and of ``each`` (which replaces the matrix's values of a parameter)."""
        with paused_gc():
            tasks = prepare_tasks(
                self.task_defs(),
                self.params,
                Path.cwd(),  # a spec file's tasks list files relative to its own folder
                matrix=self.each,
                params=params,
                each=each,
            )
            return compile_plan(self.meta, tasks)

    def encode(self) -> dict[str, Any]:
        """The plan as a plain dict: format, meta, tasks (spec, inputs, output), toposort."""
        return self.compile().to_dict()

    def bencode(self) -> bytes:
        """The plan file's bytes."""
        return self.compile().to_bytes()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Compile and write the plan file atomically."""
        self.compile().save(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read and verify a plan file; return it as a plain dict (as the original did)."""
        return load_plan(path).to_dict()

    def __repr__(self) -> str:
        return f"Dag({self.meta!r}, {len(self.members)} tasks)"


def _flatten(nodes: Nodes) -> list[Task | TaskGroup]:
    if isinstance(nodes, Task | TaskGroup):
        return [nodes]
    return list(nodes)


def _entry_tasks(nodes: Nodes) -> list[Task]:
    """The tasks that start ``nodes``: a task itself, or a group's tasks with no deps inside."""
    result: list[Task] = []
    for node in _flatten(nodes):
        if isinstance(node, Task):
            result.append(node)
        else:
            inside = set(map(id, node.members))
            result += [t for t in node.members if not any(id(d) in inside for d in t.deps)]
    return result


def _exit_tasks(nodes: Nodes) -> list[Task]:
    """The tasks that end ``nodes``: a task itself, or a group's tasks nothing inside needs."""
    result: list[Task] = []
    for node in _flatten(nodes):
        if isinstance(node, Task):
            result.append(node)
        else:
            needed = {id(d) for t in node.members for d in t.deps}
            result += [t for t in node.members if id(t) not in needed]
    return result
