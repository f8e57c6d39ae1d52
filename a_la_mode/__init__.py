"""a_la_mode: pure data pipelines that never repeat work and never lose old results."""

from .canonical import encode
from .diff import PlanDiff, diff_plans
from .dsl import Dag, Task, TaskGroup, UnknownTaskError, pp
from .encoder import TaskDef, compile_plan
from .errors import (
    AlamodeError,
    DependencyError,
    PlanError,
    SpecError,
    SpecFileError,
    UnrepresentableValue,
)
from .plan import Plan, load_plan, save_plan

__version__ = "0.2.0.dev0"

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
