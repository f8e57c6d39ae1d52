"""The pydantic ``Plan`` model: a verified plan, as the library offers it.

Build one with ``compile_plan``/``Dag.compile``, ``load_plan`` (strict reading) or
``Plan.model_validate`` (also verifies). Reading and every method live in planfile.py,
which commands use without importing pydantic.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from a_la_mode.compile.planfile import (
    OUTPUT_ID,
    PLAN_FORMAT,
    PlanBase,
    entry_bytes,
    output_id,
    read_plan,
    read_plan_file,
    task_parts,
    verify_semantics,
)
from a_la_mode.errors import PlanError

__all__ = [
    "OUTPUT_ID",
    "PLAN_FORMAT",
    "Plan",
    "entry_bytes",
    "load_plan",
    "output_id",
    "save_plan",
    "task_parts",
]


class Plan(PlanBase, BaseModel):
    """A verified plan. Build one with ``compile_plan``/``Dag.compile`` or ``load_plan``.

    ``tasks`` maps each name to its entry: the user's spec plus ``inputs`` (dependency name ->
    its output ID) and ``output`` (this task's output ID).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)  # schema built on first use

    format: Literal[1] = PLAN_FORMAT
    meta: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    toposort: list[list[str]]
    toposort_flatten: list[str]

    _digest: str | None = PrivateAttr(default=None)
    _legacy: bool = PrivateAttr(default=False)
    _parts: dict[str, tuple[bytes, bytes]] | None = PrivateAttr(default=None)
    _raw: bytes | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _verify(self) -> Plan:
        try:
            verify_semantics(self.tasks, self.toposort, self.toposort_flatten, check_hash=True)
        except PlanError as err:
            raise ValueError(str(err)) from None
        return self

    @classmethod
    def trusted(cls, parts: dict[str, tuple[bytes, bytes]] | None = None, **fields: Any) -> Plan:
        """Build a plan from fields already verified (the compiler's path): no re-check.

        ``parts`` maps each task to ``task_parts(entry)``, when the caller has them.
        """
        plan = cls.model_construct(**fields)
        plan._parts = parts
        return plan

    @classmethod
    def from_verified(cls, verified: PlanBase) -> Plan:
        """The model of a plan verified already (e.g. ``read_plan``'s), sharing its data."""
        if isinstance(verified, Plan):
            return verified
        plan = cls.trusted(
            format=PLAN_FORMAT,
            meta=verified.meta,
            tasks=verified.tasks,
            toposort=verified.toposort,
            toposort_flatten=verified.toposort_flatten,
        )
        plan._legacy, plan._digest, plan._raw = verified._legacy, verified._digest, verified._raw
        return plan

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "plan") -> Plan:
        """Decode and verify a plan file's bytes; a PlanError names ``source`` and the fault."""
        return cls.from_verified(read_plan(data, source))

    # pydantic would give a frozen model a hash (and its own equality): a plan's dicts are
    # mutable, and plans are equal by content, whichever class carries them.
    __eq__ = PlanBase.__eq__
    __hash__ = None  # type: ignore[assignment]


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and verify the plan file at ``path``; raise PlanError when it cannot be trusted."""
    return Plan.from_verified(read_plan_file(path))


def save_plan(plan: PlanBase, path: str | os.PathLike[str]) -> None:
    """Write ``plan`` to ``path`` atomically (same as ``plan.save(path)``)."""
    plan.save(path)
