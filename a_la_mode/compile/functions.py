"""Python function tasks: a task whose body is a Python function, named in its spec by
import path, with digests of its code beside it (never a pickled object).

    @dag.function(deps=[download], args={"threshold": 3})
    def clean(output: Path, inputs: dict[str, Path], threshold: int) -> None: ...

compiles to the spec

    {"function": "tasks:clean", "code": {"tasks": "<sha256>"}, "args": {"threshold": 3}}

What is hashed: the source file of the function's module, and of every module listed in
``modules``. The whole module, not the function alone: a helper or a constant beside it
changes what the function does. Not what the module imports: that is unbounded, so modules
of your own that the function relies on are listed in ``modules``; installed libraries are
pinned by your environment, not by the plan (docs/functions.md).
"""

from __future__ import annotations

import hashlib
import importlib
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from a_la_mode.errors import SpecError

FUNCTION = "function"  # spec keys: the import path, the code digests, the arguments
CODE = "code"
ARGS = "args"
SPEC_MODULE_PREFIX = "alamode_spec_"  # how a Python spec file is loaded (specfile.py)


def check_function(func: Callable[..., Any]) -> None:
    """Refuse (one line, SpecError) a lambda, a nested function, or one defined in a script
    or a spec file: nothing another process could import by path."""
    if not isinstance(func, types.FunctionType):
        raise SpecError(f"{func!r} is not a Python function defined with def")
    if func.__name__ == "<lambda>":
        raise SpecError("a lambda cannot be imported by path: define it with def at module level")
    if "<locals>" in func.__qualname__:
        raise SpecError(
            f"{func.__qualname__} is defined inside another function and cannot be imported "
            "by path: define it at module level"
        )
    module = func.__module__
    if module == "__main__" or module.startswith(SPEC_MODULE_PREFIX):
        raise SpecError(
            f"{func.__name__} is defined in the script being run, which a worker cannot "
            "import: move it into a module beside it (e.g. tasks.py) and import it from there"
        )


def import_path(func: Callable[..., Any]) -> str:
    """``module:qualname`` for a function a fresh Python process can import, checked by
    importing it (its module is imported whole by now)."""
    check_function(func)
    module = func.__module__
    found: Any = resolve(module, func.__qualname__)
    if found is not func and getattr(found, "__wrapped__", None) is not func:
        raise SpecError(
            f"{module}:{func.__qualname__} does not name {func.__name__} when imported; "
            "give it a module-level name of its own"
        )
    return f"{module}:{func.__qualname__}"


def resolve(module: str, qualname: str) -> Any:
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as err:
        raise SpecError(f"{module}:{qualname} cannot be imported by path ({err})") from None
    return found


def code_digests(modules: Sequence[str]) -> dict[str, str]:
    """The sha256 of each module's source file, by module name."""
    import inspect  # only where a function task is compiled or checked

    digests = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise SpecError(f"module {name} cannot be imported ({err})") from None
        source = inspect.getsourcefile(module)
        if source is None or not Path(source).is_file():
            raise SpecError(f"module {name} has no Python source file to hash")
        digests[name] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return digests


def function_spec(
    func: Callable[..., Any],
    args: Mapping[str, Any] | None = None,
    modules: Sequence[str] = (),
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The spec of a function task: its import path, its code's digests, its arguments (a
    dict bencode can hold: checked with the rest of the spec), and any other keys."""
    path = import_path(func)
    if args is not None and not isinstance(args, Mapping):
        raise SpecError("args must be a dict of keyword arguments, e.g. {'threshold': 3}")
    checked = dict(args or {})
    import inspect

    try:
        signature = inspect.signature(func)
        signature.bind(Path(), {}, **checked)
    except TypeError as err:
        raise SpecError(
            f"{path} cannot be called as {func.__name__}(output, inputs, **args): {err}"
        ) from None
    made = {**(spec or {}), FUNCTION: path, CODE: code_digests([func.__module__, *modules])}
    if checked:
        made[ARGS] = checked
    return made
