"""Topological levels: the linear in-order path and Kahn's algorithm always agree."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from a_la_mode import DependencyError
from a_la_mode.compile.toposort import levels


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, list[str]]:
    count = draw(st.integers(0, 12))
    deps = {}
    for index in range(count):
        chosen = draw(st.lists(st.integers(0, index - 1), max_size=3)) if index else []
        deps[f"n{index}"] = [f"n{c}" for c in chosen]  # repeats allowed
    return deps


@given(graphs(), st.randoms())
def test_levels_do_not_depend_on_the_order_tasks_arrive_in(
    deps: dict[str, list[str]], rnd: random.Random
) -> None:
    in_order = levels(deps)
    names = list(deps)
    rnd.shuffle(names)
    assert levels({name: deps[name] for name in names}) == in_order
    for depth, level in enumerate(in_order):
        assert level == sorted(level)
        for name in level:  # each task sits one above its deepest dependency
            assert depth == max((levels_of(in_order)[d] + 1 for d in deps[name]), default=0)


def levels_of(result: list[list[str]]) -> dict[str, int]:
    return {name: depth for depth, level in enumerate(result) for name in level}


def test_a_wrong_claimed_order_falls_back_to_the_real_one() -> None:
    deps = {"a": [], "b": ["a"]}
    assert levels(deps, ["b", "a"]) == [["a"], ["b"]]
    assert levels(deps, ["a"]) == [["a"], ["b"]]


def test_a_cycle_is_named_from_its_smallest_task() -> None:
    with pytest.raises(DependencyError, match="cycle: x → y → z → x"):
        levels({"z": ["y"], "y": ["x"], "x": ["z"], "free": []})
