"""a_la_mode: pure data pipelines that never repeat work and never lose old results.

The names below load on first use (PEP 562), so a command imports only what it needs:
``alamode run`` never loads the DSL, the compiler or the diff machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from a_la_mode.errors import (
    AlamodeError,
    DependencyError,
    PlanError,
    SpecError,
    SpecFileError,
    UnrepresentableValue,
)

if TYPE_CHECKING:
    from a_la_mode.compile.canonical import encode
    from a_la_mode.compile.dsl import Dag, Task, TaskGroup, UnknownTaskError, pp
    from a_la_mode.compile.encoder import TaskDef, compile_plan
    from a_la_mode.compile.plan import Plan, load_plan, save_plan
    from a_la_mode.review.diff import PlanDiff, diff_plans

__version__ = "0.2.0.dev0"

_LAZY = {
    "encode": "compile.canonical",
    "PlanDiff": "review.diff",
    "diff_plans": "review.diff",
    "Dag": "compile.dsl",
    "Task": "compile.dsl",
    "TaskGroup": "compile.dsl",
    "UnknownTaskError": "compile.dsl",
    "pp": "compile.dsl",
    "TaskDef": "compile.encoder",
    "compile_plan": "compile.encoder",
    "Plan": "compile.plan",
    "load_plan": "compile.plan",
    "save_plan": "compile.plan",
}


def __getattr__(name: str) -> Any:
    """Load a public name's module the first time the name is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AlamodeError",
    "Dag",
    "DependencyError",
    "Plan",
    "PlanDiff",
    "PlanError",
    "SpecError",
    "SpecFileError",
    "Task",
    "TaskDef",
    "TaskGroup",
    "UnknownTaskError",
    "UnrepresentableValue",
    "compile_plan",
    "diff_plans",
    "encode",
    "load_plan",
    "pp",
    "save_plan",
]
