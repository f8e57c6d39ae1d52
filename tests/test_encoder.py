"""Compiling task definitions into plans: the output-ID contract, ordering, and refusals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

import bencodepy
import pytest
from deepdiff import DeepDiff
from hypothesis import given, settings
from hypothesis import strategies as st

from a_la_mode import DependencyError, SpecError, TaskDef, UnrepresentableValue, compile_plan
from a_la_mode.compile.dsl import Dag

from .conftest import GOLDEN, GOLDEN_AFTER_BLUR_SHA, original_package


def outputs(encoded: dict[str, Any]) -> dict[str, str]:
    return {name: task["output"] for name, task in encoded["tasks"].items()}


def test_collage_output_ids_match_a_la_mode_0_1_2(collage: Dag) -> None:
    assert outputs(collage.encode()) == GOLDEN


def test_mutating_a_spec_changes_exactly_four_values(collage: Dag) -> None:
    before = collage.encode()
    collage.blur.spec["sha"] = "qwetr3"
    after = collage.encode()
    assert outputs(after) == GOLDEN_AFTER_BLUR_SHA
    changed = DeepDiff(before, after)
    assert set(changed) == {"values_changed"}
    assert set(changed["values_changed"]) == {
        "root['tasks']['blur']['sha']",
        "root['tasks']['blur']['output']",
        "root['tasks']['collage']['inputs']['blur']",
        "root['tasks']['collage']['output']",
    }


def test_output_id_is_sha256_of_the_bencoded_spec_and_inputs(collage: Dag) -> None:
    plan = collage.compile()
    entry = {**plan.spec("collage"), "inputs": plan.inputs("collage")}
    assert plan.output("collage") == hashlib.sha256(bencodepy.encode(entry)).hexdigest()
    assert plan.inputs("download_images") == {}


def test_encoded_dict_has_the_plan_format_fields(collage: Dag) -> None:
    encoded = collage.encode()
    assert encoded["format"] == 1
    assert encoded["meta"] == {"schedule": "@daily"}
    assert encoded["toposort"] == [["download_images"], ["blur", "edge_enhance"], ["collage"]]
    assert encoded["toposort_flatten"] == ["download_images", "blur", "edge_enhance", "collage"]


def test_identical_tasks_share_an_output_by_design() -> None:
    plan = compile_plan({}, [TaskDef("a", {"command": "x"}), TaskDef("b", {"command": "x"})])
    assert plan.output("a") == plan.output("b")


def test_the_task_name_is_not_hashed_but_dependency_names_are() -> None:
    one = compile_plan({}, [TaskDef("up", {}), TaskDef("down", {"c": "1"}, ["up"])])
    renamed = compile_plan({}, [TaskDef("up", {}), TaskDef("later", {"c": "1"}, ["up"])])
    other_dep = compile_plan({}, [TaskDef("up2", {}), TaskDef("down", {"c": "1"}, ["up2"])])
    assert one.output("down") == renamed.output("later")
    assert one.output("down") != other_dep.output("down")


def test_definition_order_does_not_change_the_plan_bytes() -> None:
    defs = [TaskDef("a", {}), TaskDef("b", {"x": "1"}, ["a"]), TaskDef("c", {}, ["a"])]
    assert compile_plan({}, defs).to_bytes() == compile_plan({}, defs[::-1]).to_bytes()


def test_a_deep_chain_compiles_without_recursion() -> None:
    # The original recursed per dependency and died past ~1,000 tasks deep.
    depth = 20_000
    defs = [TaskDef(f"t{i}", {"n": i}, [f"t{i - 1}"] if i else []) for i in range(depth)]
    plan = compile_plan({}, defs)
    assert len(plan.toposort) == depth
    assert plan.toposort_flatten[-1] == f"t{depth - 1}"


specs = st.dictionaries(
    st.sampled_from(["command", "image", "sha", "env", "n"]),
    st.text(max_size=8) | st.integers(-5, 5) | st.lists(st.text(max_size=3), max_size=2),
    max_size=4,
)


@st.composite
def dags(draw: st.DrawFn) -> list[TaskDef]:
    count = draw(st.integers(1, 8))
    result = []
    for index in range(count):
        deps = draw(st.lists(st.integers(0, index - 1), unique=True)) if index else []
        result.append(TaskDef(f"t{index}", draw(specs), [f"t{d}" for d in deps]))
    return result


def downstream(defs: list[TaskDef], root: str) -> set[str]:
    """``root`` and every task that depends on it, directly or not."""
    found = {root}
    for task in defs:  # defs are in topological order
        if found & set(task.deps):
            found.add(task.name)
    return found


@given(dags(), st.data())
def test_changing_one_spec_changes_exactly_its_downstream_cone(
    defs: list[TaskDef], data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(defs))
    changed_spec = {**target.spec, "sha": str(target.spec.get("sha", "")) + "!"}
    changed = [TaskDef(t.name, changed_spec if t is target else t.spec, t.deps) for t in defs]
    before, after = compile_plan({}, defs), compile_plan({}, changed)
    cone = downstream(defs, target.name)
    for task in defs:
        same = before.output(task.name) == after.output(task.name)
        assert same == (task.name not in cone), task.name


@given(dags())
def test_compiling_is_deterministic_and_round_trips(defs: list[TaskDef]) -> None:
    from a_la_mode import Plan

    data = compile_plan({"k": "v"}, defs).to_bytes()
    assert compile_plan({"k": "v"}, defs).to_bytes() == data
    assert Plan.from_bytes(data).to_bytes() == data


@settings(max_examples=25, deadline=None)
@given(dags())
def test_output_ids_agree_with_the_original_a_la_mode(defs: list[TaskDef]) -> None:
    original_dir = original_package()
    program = """
import json, sys
sys.path.insert(0, sys.argv[1])
from a_la_mode import Dag
defs = json.load(sys.stdin)
dag = Dag({})
for name, spec, deps in defs:
    dag.task(name, spec)
for name, spec, deps in defs:
    for dep in deps:
        dag[name].add_dep(dag[dep])
print(json.dumps({n: t["output"] for n, t in dag.encode()["tasks"].items()}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", program, str(original_dir)],
        input=json.dumps([[t.name, t.spec, list(t.deps)] for t in defs]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    ours = compile_plan({}, defs)
    assert json.loads(done.stdout) == {t.name: ours.output(t.name) for t in defs}


# -- refusals ------------------------------------------------------------------------------


def test_a_cycle_is_refused_naming_its_tasks_in_order() -> None:
    defs = [
        TaskDef("a", {}, ["c"]),
        TaskDef("b", {}, ["a"]),
        TaskDef("c", {}, ["b"]),
        TaskDef("d", {}, []),
    ]
    with pytest.raises(DependencyError, match=r"dependency cycle: a → b → c → a"):
        compile_plan({}, defs)


def test_a_self_dependency_is_refused() -> None:
    with pytest.raises(DependencyError, match="'a' depends on itself"):
        compile_plan({}, [TaskDef("a", {}, ["a"])])


def test_an_unknown_dependency_suggests_the_closest_name() -> None:
    with pytest.raises(DependencyError, match="unknown task 'colage', did you mean 'collage'"):
        compile_plan({}, [TaskDef("collage", {}), TaskDef("print", {}, ["colage"])])


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(SpecError, match="'a' is defined twice"):
        compile_plan({}, [TaskDef("a", {}), TaskDef("a", {"x": "1"})])


@pytest.mark.parametrize("key", ["inputs", "output"])
def test_reserved_keys_are_refused(key: str) -> None:
    with pytest.raises(SpecError, match=f"reserved key '{key}'"):
        compile_plan({}, [TaskDef("a", {key: "x"})])


def test_a_float_is_refused_with_its_path_in_the_plan() -> None:
    with pytest.raises(UnrepresentableValue, match=r"^tasks.blur.spec.threshold is a float"):
        compile_plan({}, [TaskDef("blur", {"threshold": 0.5})])


def test_a_bad_meta_value_is_refused_with_its_path() -> None:
    with pytest.raises(UnrepresentableValue, match=r"^meta.retries is None"):
        compile_plan({"retries": None}, [])


def test_group_names_are_bracketed_in_value_paths() -> None:
    with pytest.raises(UnrepresentableValue, match=r"^tasks\['ingest.fetch'\].spec.x is a bool"):
        compile_plan({}, [TaskDef("ingest.fetch", {"x": False})])


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty name"),
        ("has space", "contains ' '"),
        (".hidden", "starts with '.'"),
        ("-flag", "starts with '-'"),
        ("a/b", "contains '/'"),
    ],
)
def test_bad_task_names_are_refused(name: str, why: str) -> None:
    with pytest.raises(SpecError, match=why):
        compile_plan({}, [TaskDef(name, {})])


def test_a_spec_that_is_not_a_dict_is_refused() -> None:
    with pytest.raises(SpecError, match="spec of type list"):
        compile_plan({}, [TaskDef("a", ["echo"])])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "hint"),
    [("bad \udc80", "not valid UTF-8"), (10**5000, "over 4,000 digits")],
    ids=["lone-surrogate", "huge-int"],
)
def test_top_level_values_encoding_refuses_are_explained(value: object, hint: str) -> None:
    with pytest.raises(UnrepresentableValue, match=rf"^tasks.a.spec.v .*{hint}"):
        compile_plan({}, [TaskDef("a", {"v": value})])


def test_tasks_defined_after_their_users_still_compile_in_order() -> None:
    plan = compile_plan({}, [TaskDef("c", {}, ["b"]), TaskDef("b", {}, ["a"]), TaskDef("a", {})])
    assert plan.toposort == [["a"], ["b"], ["c"]]
