"""Questions about a plan and a store: status, explain, provenance, what gc would remove,
what verify finds. Plain functions returning data; the CLI renders them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError
from a_la_mode.run.artifacts import artifact_of, artifact_states
from a_la_mode.run.scheduler import Scheduler, State, short, wanted
from a_la_mode.store.contract import Store
from a_la_mode.store.records import HOST, OUTPUT_ID
from a_la_mode.store.revocation import describe as describe_revocation

if TYPE_CHECKING:
    from a_la_mode.cli.render import Progress
    from a_la_mode.review.diff import PlanDiff


class TaskState(NamedTuple):
    task: str
    output: str
    label: str  # done, running, would run, blocked, failed last time, output missing, revoked
    reason: str


def task_states(plan: PlanBase, store: Store, targets: list[str] | None = None) -> list[TaskState]:
    """Each wanted task as done / would run / blocked / failed last time, with its reason.

    A recorded success whose output directory is gone, or whose files changed size, counts
    as not done (``alamode verify`` re-hashes every file).
    """
    names = wanted(plan, targets)
    outputs = {plan.output(name) for name in names}
    recorded = store.outputs.successes(outputs)
    present, absent = artifact_states(plan, names)  # an artifact is the truth for its task
    recorded -= {plan.output(name) for name in absent}
    recorded |= {plan.output(name) for name in present}
    broken: dict[str, str] = {}
    for output in outputs & set(store.outputs.recorded_outputs()):
        problem = store.outputs.check_output(output, deep=False)
        if problem is not None:
            broken[output] = problem
            recorded.discard(output)
    scheduler = Scheduler(plan, recorded, targets)
    revoked = store.outputs.revocations(outputs - recorded)
    under_way = store.ledger.running_attempts(outputs - recorded)
    result = []
    failed: dict[str, str] = {}  # task -> the upstream task that failed last time, or itself
    for name in scheduler.order:
        output = plan.output(name)
        status = scheduler.status[name]
        if status.state is State.DONE:
            row = store.outputs.success_row(output)  # the ID is in its own column: not said again
            reason = f"success recorded by run {row['run']}" if row else "success recorded"
            if name in present:
                reason = f"artifact exists: {artifact_of(plan, name)}"
            result.append(TaskState(name, output, "done", reason))
            continue
        label = "would run" if status.state is State.READY else "blocked"
        reason = status.reason
        culprit = next((failed[dep] for dep in plan.inputs(name) if dep in failed), None)
        if label == "blocked" and culprit is not None:
            failed[name] = culprit
            reason = f"upstream {culprit} failed last time"
        if name in absent and store.outputs.success_row(output) is not None:
            reason = f"its artifact {artifact_of(plan, name)} is gone; it will run again"
        if output in under_way:
            who = under_way[output]
            where = "" if who["host"] == HOST else f" on {who['host']}"
            label = "running"
            reason = f"being produced by run {who['run']} (pid {who['pid']}{where})"
        elif output in broken:
            label, reason = "output missing", f"success recorded, but {broken[output]}"
        elif output in revoked:
            label, reason = "revoked", f"{describe_revocation(revoked[output])}; it will run again"
        else:
            failure = store.ledger.last_failure(output)
            if failure is not None and label == "would run":
                label = "failed last time"
                failed[name] = name
                reason = f"{describe_attempt(failure)}; log: {failure['log']}"
        result.append(TaskState(name, output, label, reason))
    return result


def describe_attempt(row: dict[str, Any]) -> str:
    if row.get("detail"):  # in the runner's words (stores of schema 4 on)
        return str(row["detail"])
    if row.get("timed_out"):
        return "timed out"
    if row.get("oom_killed"):
        return "killed for running out of memory"
    if row.get("signal"):
        return f"killed by signal {row['signal']}"
    if row.get("status") == "interrupted":
        return "interrupted"
    if row.get("status") == "killed":
        return "its runner was killed before it finished"
    return f"exited with status {row.get('exit_code')}"


def explain(plan: PlanBase, store: Store, task: str) -> list[str]:
    """Why ``task`` will or won't run; what differs from its last success, if any."""
    known_task(plan, task)
    states = {s.task: s for s in task_states(plan, store, [task])}
    state = states[task]
    lines = [f"{task}: {state.label}: {state.reason}"]
    if state.label == "done":
        return lines
    for dep in plan.inputs(task):
        lines.append(f"  input {dep}: {states[dep].label} ({states[dep].reason})")
    for attempt in store.ledger.history(task, 1):
        if attempt["output"] != state.output and attempt["status"] != "succeeded":
            lines.append(
                f"  last attempt: {describe_attempt(attempt)} in run {attempt['run']}, "
                f"for output {short(attempt['output'])}"
            )
    earlier = [
        (row["recorded"], output, row)
        for output, name in store.outputs.recorded_outputs().items()
        if name == task
        for row in [store.outputs.success_row(output)]
        if row and output != state.output
    ]
    if not earlier:
        lines.append(f"  no earlier success of {task} under another output ID")
        return lines
    _, old_output, row = max(earlier)
    lines.append(
        f"  last success: {short(old_output)} in run {row['run']} (plan {row['plan'][:12]})"
    )
    try:
        old_plan = store.outputs.load_plan(row["plan"])
    except AlamodeError as err:
        lines.append(f"  cannot compare: {err}")
        return lines
    from a_la_mode.review.diff import diff_plans  # a run never needs the diff machinery

    change = next((c for c in diff_plans(old_plan, plan).changed if c.name == task), None)
    if change is not None:
        lines.append(f"  since then it {change.why()}")
    return lines


def known_task(plan: PlanBase, task: str) -> str:
    """``task``, if ``plan`` has it; else AlamodeError with the closest name."""
    if task not in plan.tasks:
        from a_la_mode.compile.naming import did_you_mean

        raise AlamodeError(
            f"unknown task {task!r}{did_you_mean(task, plan.tasks)}; 'alamode show' lists them"
        )
    return task


def result_folder(plan: PlanBase, store: Store, task: str) -> Path:
    """The folder holding ``task``'s output for ``plan`` (fetched into this machine's cache
    from a blob store); AlamodeError saying why when it is not done."""
    known_task(plan, task)
    state = next(s for s in task_states(plan, store, [task]) if s.task == task)
    if state.label != "done":
        raise AlamodeError(
            f"task {task!r} has no output for this plan yet ({state.label}: {state.reason}); "
            "'alamode run' makes it"
        )
    return store.outputs.fetch(state.output)


def resolve_output(store: Store, text: str) -> str:
    """A full output ID from an ID, a unique prefix of at least 6 digits, or a task name."""
    if OUTPUT_ID.match(text):
        return text
    by_prefix = store.outputs.outputs_with_prefix(text) if len(text) >= 6 else []
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        raise AlamodeError(
            f"output prefix {text!r} is ambiguous ({len(by_prefix)} match); give more digits"
        )
    latest = store.outputs.latest_output(text)
    if latest is not None:
        return latest
    raise AlamodeError(
        f"{text!r} is neither a task with history nor a known output ID in {store.where}"
    )


def provenance(store: Store, output: str, depth: int = 0) -> dict[str, Any]:
    """Which task, spec, inputs and plan produced ``output``, recursively."""
    row = store.outputs.success_row(output)
    node: dict[str, Any] = {"output": output, "recorded": row is not None}
    if row is None:
        revocation = store.outputs.revocations([output]).get(output)
        if revocation is None:
            return node
        node["revoked"] = describe_revocation(revocation)
        row = revocation  # it still says which task and plan made the output
    node.update(row)
    try:
        plan = store.outputs.load_plan(row["plan"])
    except AlamodeError:
        node["spec"] = None
        node["inputs"] = []
        return node
    node["spec"] = plan.spec(row["task"])
    node["inputs"] = [
        {"name": dep, **provenance(store, dep_output, depth + 1)}
        for dep, dep_output in plan.inputs(row["task"]).items()
    ]
    return node


def gc_candidates(
    store: Store, keep_plans: int, since: float | None = None
) -> tuple[list[str], list[str]]:
    """(outputs to remove, plans kept): outputs that no plan among the last ``keep_plans``
    run -- or, with ``since``, no plan run since that time -- uses."""
    kept = (
        store.outputs.plans_since(since)
        if since is not None
        else store.outputs.recent_plans(keep_plans)
    )
    reachable: set[str] = set()
    for digest in kept:
        try:
            plan = store.outputs.load_plan(digest)
        except AlamodeError:
            continue
        reachable.update(plan.output(name) for name in plan.tasks)
    candidates = set(store.outputs.stored_outputs()) | set(store.outputs.recorded_outputs())
    return sorted(candidates - reachable), kept


def gc_details(store: Store, outputs: list[str]) -> list[dict[str, Any]]:
    """Each output ``gc`` would remove, with the task that made it and its size."""
    recorded = store.outputs.recorded_outputs()
    details = []
    for output in outputs:
        row = store.outputs.success_row(output) if output in recorded else None
        if row is not None:
            size = int(row["bytes"])
        else:  # an output without a record (a killed runner's): measured on disk
            folder = store.outputs.output_path(output)
            size = sum(f.lstat().st_size for f in folder.rglob("*") if f.is_file())
        details.append({"output": output, "task": recorded.get(output), "bytes": size})
    return details


def verify(
    store: Store, forget: bool, progress: Progress | None = None
) -> list[tuple[str, str, str]]:
    """Re-hash every recorded output; (output, task, problem) for each bad one. With
    ``forget``, drop their success records so the next run redoes them. ``progress`` is
    told the count, then each output checked."""
    bad = []
    recorded = sorted(store.outputs.recorded_outputs().items())
    if progress is not None:
        progress.start(len(recorded))
    for output, task in recorded:
        problem = store.outputs.check_output(output, deep=True)
        if problem is not None:
            bad.append((output, task, problem))
            if forget:
                store.outputs.forget(output)
        if progress is not None:
            progress.advance()
    return bad


def recompute_estimate(result: PlanDiff, store: Store) -> dict[str, Any]:
    """For ``alamode diff --store``: which changed or added tasks' new outputs the store
    already has, and the estimated time to compute the rest from recorded durations."""
    names = [c.name for c in result.changed] + list(result.added)
    outputs = {c.name: c.new_output for c in result.changed} | result.added_outputs
    existing = store.outputs.successes(outputs.values())
    durations = store.ledger.durations()
    missing = [n for n in names if outputs[n] not in existing]
    revoked = store.outputs.revocations(outputs[n] for n in missing)
    return {
        "path": store.where,
        "existing": [n for n in names if outputs[n] in existing],
        "to_compute": missing,
        "revoked": {
            n: describe_revocation(revoked[outputs[n]]) for n in missing if outputs[n] in revoked
        },
        "estimated_seconds": round(sum(durations.get(n, 0.0) for n in missing), 3),
        "without_recorded_time": [n for n in missing if n not in durations],
    }
