"""What each page of the service shows, as plain data: the HTML templates render it, and
``/api/...`` returns it as JSON. Reuses the command line's queries (status, provenance,
diff with the store's estimate), so the two agree."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any

from a_la_mode.compile.naming import base_name
from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError
from a_la_mode.review.diff import diff_plans
from a_la_mode.review.queries import provenance, recompute_estimate, task_states
from a_la_mode.run.scheduler import Scheduler
from a_la_mode.store.contract import Store

DAY = 86400.0
LOG_TAIL = 64 * 1024  # the end of each log shown on a task's page
HISTORY_ROWS = 20_000  # attempts read for averages


class NotFound(AlamodeError):
    """An unknown plan, task or run: a 404 with one line."""


class PlanCache:
    """Plans are immutable: each is read from the store once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.plans: dict[str, PlanBase] = {}

    def get(self, digest: str, listed: bool = False) -> PlanBase:
        """The plan; ``listed``: the digest comes from the store's own listing."""
        if digest not in self.plans:
            if not listed and digest not in set(self.store.outputs.all_plans()):
                raise NotFound(f"no plan {digest[:12]}… in this store")
            self.plans[digest] = self.store.outputs.load_plan(digest)
        return self.plans[digest]


def plan_name(plan: PlanBase) -> str:
    meta = plan.meta
    return str(meta.get("name") or meta.get("owner") or "")


def plans_page(store: Store, plans: PlanCache) -> dict[str, Any]:
    """Every plan the store has seen, with its last run, newest first."""
    last: dict[str, dict[str, Any]] = {}
    for run in store.ledger.runs(100_000):
        last.setdefault(run["plan"], run)
    rows: list[dict[str, Any]] = []
    for digest in store.outputs.all_plans():
        try:
            plan = plans.get(digest, listed=True)  # one listing, not one per plan
        except AlamodeError:
            continue  # unreadable: 'alamode verify' says why
        rows.append(
            {
                "digest": digest,
                "name": plan_name(plan),
                "tasks": len(plan.tasks),
                "last_run": last.get(digest),
            }
        )
    rows.sort(key=lambda row: -float((row["last_run"] or {}).get("started", 0.0)))
    return {"plans": rows}


def _averages(attempts: list[dict[str, Any]]) -> dict[str, float]:
    seconds: dict[str, list[float]] = defaultdict(list)
    for row in attempts:
        if row["status"] == "succeeded" and row["seconds"] is not None:
            seconds[row["task"]].append(float(row["seconds"]))
    return {task: statistics.fmean(values) for task, values in seconds.items()}


def group_of(name: str) -> str:
    """The group a task is drawn in: its DSL group (``ingest`` of ``ingest.fetch``), or its
    parameterised task (``download`` of ``download[day=...]``), else itself."""
    base = base_name(name)
    return base.split(".", 1)[0] if "." in base else base


def plan_page(store: Store, plan: PlanBase, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    states = {state.task: state for state in task_states(plan, store)}
    attempts = store.ledger.history(None, HISTORY_ROWS)  # read once: averages and timeline
    averages = _averages(attempts)
    done = {state.output for state in states.values() if state.label == "done"}
    scheduler = Scheduler(plan, done, None, store.ledger.durations())
    tasks = []
    for name in (name for level in plan.toposort for name in level):  # in run order
        state = states[name]
        tasks.append(
            {
                "task": name,  # task, output, label, reason: as 'alamode status --json'
                "output": plan.output(name),
                "deps": list(plan.inputs(name)),
                "group": group_of(name),
                "label": state.label,
                "reason": state.reason,
                "average_seconds": averages.get(name),
                "priority": scheduler.cost.get(name),
            }
        )
    runs = [r for r in store.ledger.runs(100_000) if r["plan"] == plan.digest]
    recent = [r for r in runs if r["started"] >= now - 30 * DAY and r["finished"]]
    last_runs = runs[:3]
    timeline = _timeline(attempts, [r["run"] for r in last_runs])
    expensive = sorted(
        ((name, averages[name]) for name in plan.tasks if name in averages),
        key=lambda pair: -pair[1],
    )[:10]
    return {
        "digest": plan.digest,
        "name": plan_name(plan),
        "meta": dict(plan.meta),
        "levels": [list(level) for level in plan.toposort],
        "tasks": tasks,
        "runs_30_days": [
            {**_fields(r, "run", "started", "status"), "seconds": r["finished"] - r["started"]}
            for r in reversed(recent)
        ],
        "expensive_tasks": [{"task": n, "average_seconds": s} for n, s in expensive],
        "last_runs": [{**r, "attempts": timeline.get(r["run"], [])} for r in last_runs],
    }


def _fields(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: row[name] for name in names}


def _timeline(attempts: list[dict[str, Any]], runs: list[int]) -> dict[int, list[dict[str, Any]]]:
    wanted = set(runs)
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in attempts:
        if row["run"] in wanted:
            found[row["run"]].append(
                {k: row[k] for k in ("task", "attempt", "started", "seconds", "status")}
            )
    for attempts in found.values():
        attempts.sort(key=lambda a: a["started"])
    return found


def task_page(store: Store, plan: PlanBase, task: str) -> dict[str, Any]:
    if task not in plan.tasks:
        raise NotFound(f"no task {task!r} in plan {plan.digest[:12]}…")
    output = plan.output(task)
    downstream = [name for name in plan.tasks if task in plan.inputs(name)]
    attempts = store.ledger.history(task, 30)
    logs = []
    for number, path in sorted(store.ledger.attempt_logs(output).items())[-3:]:
        try:
            with open(path, "rb") as reader:
                reader.seek(max(0, path.stat().st_size - LOG_TAIL))
                text = reader.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        logs.append({"attempt": number, "text": text})
    return {
        "plan": plan.digest,
        "task": task,
        "output": output,
        "spec": plan.spec(task),
        "upstream": list(plan.inputs(task)),
        "downstream": downstream,
        "provenance": provenance(store, output),
        "run_times": [
            _fields(a, "run", "started", "seconds", "status") for a in reversed(attempts)
        ],
        "logs": list(reversed(logs)),
    }


def review_page(store: Store, old: PlanBase, new: PlanBase) -> dict[str, Any]:
    result = diff_plans(old, new)
    return {
        **result.to_json(),
        "old_name": plan_name(old),
        "new_name": plan_name(new),
        "store": recompute_estimate(result, store),
        "lines": [f"{change.name}: {change.why()}" for change in result.changed],
    }
