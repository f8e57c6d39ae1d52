"""The runner with a submit-and-poll engine (engine API 2): the path remote engines take.
Real processes (tests/polling_engine.py), a real store directory and SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from a_la_mode import TaskDef, compile_plan
from a_la_mode.compile.plan import Plan
from a_la_mode.run.engine import EngineError, api_version
from a_la_mode.run.events import Event, RunInterrupted
from a_la_mode.run.options import RunOptions
from a_la_mode.run.runner import run_plan
from a_la_mode.store.directory import LocalStore

from .polling_engine import PollingShellEngine

LEFT = 'cat "$ALAMODE_INPUT_TOP/v" > "$ALAMODE_OUTPUT/v"; echo left >> "$ALAMODE_OUTPUT/v"'


def diamond(
    bottom: str = 'cat "$ALAMODE_INPUT_LEFT/v" "$ALAMODE_INPUT_RIGHT/v" > "$ALAMODE_OUTPUT/v"',
) -> Plan:
    return compile_plan(
        {},
        [
            TaskDef("top", {"command": 'echo top > "$ALAMODE_OUTPUT/v"; echo said-top'}),
            TaskDef(
                "left",
                {"command": LEFT},
                ["top"],
            ),
            TaskDef("right", {"command": 'echo right > "$ALAMODE_OUTPUT/v"'}, ["top"]),
            TaskDef("bottom", {"command": bottom}, ["left", "right"]),
            TaskDef("join", {}, ["bottom"]),
        ],
    )


def run(plan: Plan, store: LocalStore, **options: Any) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    engine: Any = PollingShellEngine()
    report = run_plan(plan, store, engine, RunOptions(jobs=2, **options), events.append)
    return report, events


def test_a_plan_runs_through_submit_and_poll_and_is_recorded(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    plan = diamond()
    report, events = run(plan, store)
    assert report.scheduler.succeeded
    assert sorted(e.task for e in events if e.kind == "succeed") == sorted(plan.tasks)
    bottom = store.outputs.output_path(plan.output("bottom")) / "v"
    assert bottom.read_text() == "top\nleft\nright\n"
    history = {row["task"]: row for row in store.ledger.history(None, 10)}
    assert {row["status"] for row in history.values()} == {"succeeded"}
    assert store.ledger.runs(1)[0]["engine"] == "polling"
    log = Path(store.ledger.attempt_logs(plan.output("top"))[1])
    assert log.read_text() == "said-top\n"
    assert not store.ledger.attempt_logs(plan.output("right"))[1].exists()  # printed nothing

    _, again = run(plan, store)
    assert [e.kind for e in again if e.kind in ("start", "succeed")] == []


def test_a_failure_is_recorded_and_stops_what_depends_on_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    plan = diamond(bottom="echo broken; exit 4")
    report, events = run(plan, store)
    assert not report.scheduler.succeeded
    failed = [e for e in events if e.kind == "fail"]
    assert [e.task for e in failed] == ["bottom"]
    assert failed[0].detail.startswith("exited with status 4")
    assert "join" not in {e.task for e in events if e.kind == "start"}
    assert store.outputs.successes([plan.output("bottom")]) == set()
    assert store.ledger.last_failure(plan.output("bottom"))["exit_code"] == 4


def test_ctrl_c_stops_submitted_jobs_and_records_nothing_half_done(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    plan = compile_plan(
        {},
        [TaskDef("slow", {"command": 'sleep 30; echo late > "$ALAMODE_OUTPUT/v"'})],
    )

    def press_ctrl_c(event: Event) -> None:
        if event.kind == "start":
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run_plan(plan, store, PollingShellEngine(), RunOptions(jobs=1), press_ctrl_c)
    assert store.outputs.successes([plan.output("slow")]) == set()
    assert [row["status"] for row in store.ledger.history("slow", 5)] == ["interrupted"]
    assert store.ledger.runs(1)[0]["status"] == "interrupted"


class _FutureEngine:
    name = "future"
    api_version = 3


class _FarAwayEngine:
    name = "far"
    api_version = 2
    placement = "cluster"


def test_an_engine_of_an_unknown_version_or_placement_is_refused_by_name() -> None:
    with pytest.raises(EngineError, match=r"^engine 'future' speaks engine API 3; .*upgrade"):
        api_version(_FutureEngine())
    with pytest.raises(EngineError, match=r"^engine 'far' runs jobs at placement 'cluster'"):
        api_version(_FarAwayEngine())
