"""The scheduler is pure state: driven here with no processes and no store."""

from __future__ import annotations

import pytest

from a_la_mode import AlamodeError, TaskDef, compile_plan
from a_la_mode.compile.plan import Plan
from a_la_mode.run.scheduler import Scheduler, State


def diamond() -> Plan:
    return compile_plan(
        {},
        [
            TaskDef("top", {"c": "top"}),
            TaskDef("left", {"c": "left"}, ["top"]),
            TaskDef("right", {"c": "right"}, ["top"]),
            TaskDef("bottom", {"c": "b"}, ["left", "right"]),
            TaskDef("alone", {"c": "alone"}),
        ],
    )


def drain(scheduler: Scheduler, fail: frozenset[str] = frozenset()) -> list[str]:
    order = []
    while (name := scheduler.next_ready()) is not None:
        order.append(name)
        scheduler.finished(name, name not in fail, "x")
    return order


def test_everything_runs_in_dependency_order() -> None:
    scheduler = Scheduler(diamond(), set())
    order = drain(scheduler)
    assert order.index("top") < order.index("left") < order.index("bottom")
    assert scheduler.succeeded and scheduler.is_over()


def test_done_outputs_are_skipped_with_a_reason() -> None:
    plan = diamond()
    scheduler = Scheduler(plan, {plan.output("top"), plan.output("left")})
    assert scheduler.status["top"].state is State.DONE
    assert scheduler.status["top"].reason == "success recorded"  # what shows it adds the ID
    assert scheduler.status["bottom"].reason == "upstream right will run"
    assert drain(scheduler) == ["right", "alone", "bottom"]


def test_the_longest_remaining_path_starts_first() -> None:
    plan = diamond()
    durations = {"top": 1.0, "left": 1.0, "right": 50.0, "bottom": 1.0, "alone": 10.0}
    scheduler = Scheduler(plan, set(), durations=durations)
    assert scheduler.next_ready() == "top"  # 1 + 50 + 1 = 52 ahead of alone's 10
    scheduler.finished("top", True, "ok")
    assert scheduler.next_ready() == "right"
    assert scheduler.next_ready() == "alone"
    assert scheduler.next_ready() == "left"


def test_equal_costs_fall_back_to_plan_order() -> None:
    plan = compile_plan({}, [TaskDef(n, {"c": n}) for n in ("b", "a", "c")])
    assert drain(Scheduler(plan, set())) == ["a", "b", "c"]  # plan order: sorted levels


def test_targets_bring_their_upstream_only() -> None:
    scheduler = Scheduler(diamond(), set(), targets=["left"])
    assert drain(scheduler) == ["top", "left"]
    with pytest.raises(AlamodeError, match="unknown target 'lft', did you mean 'left'"):
        Scheduler(diamond(), set(), targets=["lft"])


def test_a_failure_blocks_downstream_and_stops_the_rest() -> None:
    scheduler = Scheduler(diamond(), set())
    order = drain(scheduler, fail={"left"})
    assert "bottom" not in order
    assert scheduler.status["left"].state is State.FAILED
    assert scheduler.status["bottom"].state is State.BLOCKED
    assert scheduler.status["bottom"].reason == "upstream left failed"
    stopped = [n for n, s in scheduler.status.items() if s.state is State.STOPPED]
    assert all("stopped after left failed" in scheduler.status[n].reason for n in stopped)
    assert not scheduler.succeeded


def test_keep_going_finishes_independent_branches() -> None:
    scheduler = Scheduler(diamond(), set(), keep_going=True)
    order = drain(scheduler, fail={"left"})
    assert {"right", "alone"} <= set(order) and "bottom" not in order
    assert scheduler.status["bottom"].state is State.BLOCKED


def test_identical_tasks_wait_for_one_producer() -> None:
    plan = compile_plan({}, [TaskDef("a", {"c": "same"}), TaskDef("b", {"c": "same"})])
    scheduler = Scheduler(plan, set())
    first = scheduler.next_ready()
    assert scheduler.next_ready() is None  # the twin waits for the same output
    assert first is not None
    scheduler.finished(first, True, "ok")
    twin = "b" if first == "a" else "a"
    assert scheduler.status[twin].state is State.SUCCEEDED
    assert scheduler.status[twin].reason == f"same output as {first}"


def test_simulate_lists_the_start_order_of_a_dry_run() -> None:
    plan = diamond()
    order = Scheduler(plan, {plan.output("top")}).simulate()
    assert set(order) == {"left", "right", "bottom", "alone"}
    assert order[-1] == "bottom"


def test_redoing_an_input_of_a_done_task_leaves_it_done() -> None:
    plan = diamond()
    done = {plan.output(n) for n in ("top", "right", "bottom", "alone")}
    scheduler = Scheduler(plan, done)  # left's output went missing; bottom is still done
    assert drain(scheduler) == ["left"]
    assert scheduler.status["bottom"].state is State.DONE


def test_a_task_can_be_claimed_ahead_once_its_upstream_is_handed_out() -> None:
    scheduler = Scheduler(diamond(), set())
    assert scheduler.next_ahead() is None  # nothing handed out yet
    assert scheduler.next_ready() == "top"
    ahead = [scheduler.next_ahead(), scheduler.next_ahead()]
    assert sorted(ahead) == ["left", "right"]  # waiting on top only, which is out
    assert scheduler.next_ahead() == "bottom"  # its upstream is claimed ahead itself
    assert scheduler.next_ahead() is None
    assert scheduler.status["left"].state is State.WAITING  # claimed, not ready
    scheduler.finished("top", True, "ok")
    assert scheduler.status["left"].state is State.READY  # and handed out as usual


def test_claiming_ahead_offers_nothing_twice_and_stops_with_the_run() -> None:
    scheduler = Scheduler(diamond(), set())
    assert scheduler.next_ready() == "top"
    assert scheduler.next_ready() == "alone"
    assert scheduler.next_ahead() is not None
    scheduler.finished("alone", False, "exited with status 1")  # no --keep-going: stop
    assert scheduler.next_ahead() is None
    assert scheduler.status["bottom"].state is State.STOPPED


def test_a_task_whose_output_another_task_makes_is_not_claimed_ahead() -> None:
    """Twins share one lease: only the one handed out first may claim it."""
    plan = compile_plan(
        {},
        [
            TaskDef("top", {"c": "top"}),
            TaskDef("a", {"c": "same"}, ["top"]),
            TaskDef("b", {"c": "same"}, ["top"]),
            TaskDef("c", {"c": "other"}, ["top"]),
        ],
    )
    scheduler = Scheduler(plan, set())
    assert scheduler.next_ready() == "top"
    assert scheduler.next_ahead() == "c"
    assert scheduler.next_ahead() is None
