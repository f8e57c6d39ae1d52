"""Revoking a bad result: the output, and every output built on it.

An output revoked is never used again: its success is dropped (append-only records keep
who, when and why), so its task runs again. Every output built on it, found through the
inputs of every plan the store has seen, is revoked too, naming the one it was built on.
"""

from __future__ import annotations

import getpass
import time
from collections import deque
from typing import Any

from a_la_mode.errors import AlamodeError
from a_la_mode.store.contract import Store
from a_la_mode.store.records import HOST


def short(output_id: str) -> str:
    return output_id[:12] + "…"


def who() -> str:
    """``user@host``, for the record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{HOST}"


def built_on(store: Store, output: str) -> list[str]:
    """Every output that any plan the store has seen builds on ``output``, directly or not,
    nearest first."""
    users: dict[str, set[str]] = {}
    for digest in store.outputs.all_plans():
        try:
            plan = store.outputs.load_plan(digest)
        except AlamodeError:
            continue
        for name, task in plan.tasks.items():
            for upstream in task["inputs"].values():
                users.setdefault(upstream, set()).add(plan.output(name))
    found: list[str] = []
    seen = {output}
    queue = deque([output])
    while queue:
        for user in sorted(users.get(queue.popleft(), ())):
            if user not in seen:
                seen.add(user)
                found.append(user)
                queue.append(user)
    return found


def revoke(store: Store, output: str, reason: str, dry_run: bool = False) -> list[dict[str, Any]]:
    """Revoke ``output`` and every recorded output built on it; the records, root first.
    AlamodeError if ``output`` has no recorded success."""
    if store.outputs.success_row(output) is None:
        earlier = store.outputs.revocations([output]).get(output)
        if earlier is not None:
            raise AlamodeError(
                f"output {short(output)} is revoked already ({earlier['reason']}); nothing to do"
            )
        raise AlamodeError(f"output {short(output)} has no recorded success in {store.where}")
    downstream = [o for o in built_on(store, output) if store.outputs.success_row(o) is not None]
    by = who()
    plan: list[tuple[str, str]] = [(output, reason)]
    plan += [(o, f"built on revoked {short(output)}: {reason}") for o in downstream]
    if dry_run:
        now = time.time()
        return [
            {
                **(store.outputs.success_row(o) or {}),
                "output": o,
                "reason": r,
                "who": by,
                "recorded": now,
            }
            for o, r in plan
        ]
    records = []
    for target, why in plan:
        record = store.outputs.revoke(target, why, by)
        if record is not None:
            records.append(record)
    return records


def describe(record: dict[str, Any]) -> str:
    """``revoked by ann@box on 2026-12-03 14:20: <reason>``"""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record["recorded"]))
    return f"revoked by {record['who']} on {when}: {record['reason']}"
