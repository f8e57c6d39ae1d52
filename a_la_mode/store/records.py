"""What every store's parts pass between them: leases, successes, output IDs, revocations."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from typing import Any, NamedTuple

from a_la_mode.errors import StoreError
from a_la_mode.store.manifest import Manifest

OUTPUT_ID = re.compile(r"^[0-9a-f]{64}$")
HOST = os.uname().nodename  # what socket.gethostname() returns, without importing socket


class Lease(NamedTuple):
    """The outcome of asking for an output: ours to produce, someone else's, or done."""

    state: str  # "ours", "held" (another live runner), "done" (success already recorded)
    holder: str = ""
    # from claim(), when it started an attempt: its row, its number, and its log file
    attempt: int | None = None
    number: int | None = None
    log: str | None = None


class Success(NamedTuple):
    """What the store records when an output is published."""

    output: str
    task: str
    plan: str  # the plan's digest
    run: int
    seconds: float
    engine: str
    manifest: Manifest
    worker: str = ""  # a worker that published it and created its marker (placement "store")
    inputs: tuple[str, ...] = ()  # the output IDs it was built from: none may be revoked


class Refusal(NamedTuple):
    """A published output the store would not record: it, or an input, was revoked before
    its success could be recorded."""

    attempt: int
    output: str
    task: str
    reason: str


def checked_id(output_id: str) -> str:
    """Refuse anything but a 64-hex-digit output ID before it becomes part of a path."""
    if not OUTPUT_ID.match(output_id):
        raise StoreError(f"{output_id!r} is not an output ID (64 lowercase hex digits)")
    return output_id


def revocation_record(
    output_id: str, success: dict[str, Any], reason: str, who: str
) -> dict[str, Any]:
    """What a revocation keeps: the output, which task and plan made it (from its success
    row, which goes), why, who, and when."""
    return {
        "output": output_id,
        "task": success["task"],
        "plan": success["plan"],
        "run": success["run"],
        "reason": reason,
        "who": who,
        "recorded": time.time(),
    }


def refusals(
    finished: list[tuple[int, float, Success]], revoked: dict[str, dict[str, Any]]
) -> dict[int, Refusal]:
    """The outputs of a batch that must not be recorded, given the inputs revoked now (by
    output ID, each with its revocation record): built on a revoked input, or on an output
    of this batch refused before it. An output the batch makes again is good from then on."""
    revoked = dict(revoked)
    refused: dict[int, Refusal] = {}
    for attempt, _, success in finished:
        for upstream in success.inputs:
            record = revoked.get(upstream)
            if record is not None:
                why = (
                    f"its input {record['task']} ({upstream[:12]}…) was revoked before it "
                    f"was recorded: {record['reason']}"
                )
                refused[attempt] = Refusal(attempt, success.output, success.task, why)
                revoked[success.output] = {"task": success.task, "reason": why}
                break
        else:
            revoked.pop(success.output, None)
    return refused


def refusal_record(success: Success, reason: str) -> dict[str, Any]:
    """The revocation a store appends for an output it refused to record."""
    made = {"task": success.task, "plan": success.plan, "run": success.run}
    return revocation_record(success.output, made, reason, "alamode (the run's commit)")


def random_suffix() -> str:
    """Eight hex digits, for names that must not collide."""
    return os.urandom(4).hex()


def dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """Rows as dicts keyed by column name (or alias)."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
