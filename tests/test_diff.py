"""alamode diff: what changed between two plans, and why."""

from __future__ import annotations

import json
from pathlib import Path

from a_la_mode import TaskDef, compile_plan, diff_plans
from a_la_mode.review.diff import word_diff

from .conftest import SPECS, alamode, collage_dag

DIAMOND = [
    TaskDef("top", {"command": "top"}),
    TaskDef("left", {"command": "left"}, ["top"]),
    TaskDef("right", {"command": "right"}, ["top"]),
    TaskDef("bottom", {"command": "bottom"}, ["left", "right"]),
]


def edited(defs: list[TaskDef], name: str, **spec: object) -> list[TaskDef]:
    return [TaskDef(t.name, {**t.spec, **spec} if t.name == name else t.spec, t.deps) for t in defs]


def test_the_seed_example_blames_blur_for_collage() -> None:
    dag = collage_dag()
    old = dag.compile()
    dag.blur.spec["sha"] = "qwetr3"
    result = diff_plans(old, dag.compile())
    (blur,) = result.changed_itself()
    assert blur.name == "blur"
    assert [(f.path, f.old, f.new) for f in blur.fields] == [("sha", "6f09d", "qwetr3")]
    (collage,) = result.changed_upstream()
    assert collage.name == "collage"
    assert collage.causes == {"blur": ("blur", "collage")}
    assert set(result.unchanged) == {"download_images", "edge_enhance"}
    assert not result.same_outputs


def test_identical_plans_have_no_changes() -> None:
    plan = compile_plan({}, DIAMOND)
    result = diff_plans(plan, plan)
    assert result.same_outputs and not result.changed
    assert result.unchanged == ("top", "left", "right", "bottom")


def test_two_roots_changing_at_once_are_both_named_with_their_paths() -> None:
    new = edited(edited(DIAMOND, "left", command="LEFT"), "right", env={"X": "1"})
    result = diff_plans(compile_plan({}, DIAMOND), compile_plan({}, new))
    roots = {c.name: c for c in result.changed_itself()}
    assert set(roots) == {"left", "right"}
    assert [f.describe() for f in roots["right"].fields] == ["env: added {'X': '1'}"]
    (bottom,) = result.changed_upstream()
    assert bottom.causes == {"left": ("left", "bottom"), "right": ("right", "bottom")}


def test_a_change_far_upstream_is_traced_along_its_path() -> None:
    defs = [TaskDef("a", {"v": "1"}), TaskDef("b", {}, ["a"]), TaskDef("c", {}, ["b"])]
    result = diff_plans(compile_plan({}, defs), compile_plan({}, edited(defs, "a", v="2")))
    changes = {c.name: c for c in result.changed}
    assert changes["c"].causes == {"a": ("a", "b", "c")}
    assert changes["c"].why() == "changed because of upstream a → b → c"


def test_an_added_dependency_means_the_task_changed_itself() -> None:
    new = [*DIAMOND[:3], TaskDef("bottom", {"command": "bottom"}, ["left", "right", "top"])]
    result = diff_plans(compile_plan({}, DIAMOND), compile_plan({}, new))
    (bottom,) = result.changed
    assert bottom.reason == "self"
    assert bottom.why() == "changed itself: input top added"


def test_a_removed_dependency_and_a_removed_task() -> None:
    new = [DIAMOND[0], DIAMOND[1], TaskDef("bottom", {"command": "bottom"}, ["left"])]
    result = diff_plans(compile_plan({}, DIAMOND), compile_plan({}, new))
    assert result.removed == ("right",)
    assert [c.describe() for c in result.changed[0].inputs] == ["input right removed"]


def test_a_pure_rename_keeps_its_output_and_renames_downstream_inputs() -> None:
    new = [
        DIAMOND[0],
        TaskDef("west", {"command": "left"}, ["top"]),
        *DIAMOND[2:3],
        TaskDef("bottom", {"command": "bottom"}, ["west", "right"]),
    ]
    result = diff_plans(compile_plan({}, DIAMOND), compile_plan({}, new))
    assert result.renamed == (("left", "west"),)
    assert not result.added and not result.removed
    (bottom,) = result.changed  # the dependency name is hashed, so bottom's ID moved
    assert bottom.why() == "changed itself: input left renamed to west"


def test_a_rename_whose_upstream_also_changed_is_matched_by_spec() -> None:
    new = edited(DIAMOND, "top", command="TOP")
    new = [
        new[0],
        TaskDef("west", {"command": "left"}, ["top"]),
        *new[2:3],
        TaskDef("bottom", {"command": "bottom"}, ["west", "right"]),
    ]
    result = diff_plans(compile_plan({}, DIAMOND), compile_plan({}, new))
    assert result.added == ("west",) and result.removed == ("left",)  # its inputs differ
    assert result.renamed == ()


def test_meta_changes_are_reported_but_change_no_output() -> None:
    result = diff_plans(
        compile_plan({"s": "@daily"}, DIAMOND), compile_plan({"s": "@hourly"}, DIAMOND)
    )
    assert [m.describe() for m in result.meta] == ["s: '@daily' → '@hourly'"]
    assert result.same_outputs


def test_long_commands_are_shown_as_a_word_diff() -> None:
    old = "python train.py --epochs 10 --learning-rate 3 --batch 64 --data /srv/data/v1"
    new = old.replace("--epochs 10", "--epochs 20")
    assert word_diff(old, new) == (
        "python train.py --epochs [-10-] {+20+} --learning-rate 3 … --data /srv/data/v1"
    )


def test_json_has_the_documented_shape() -> None:
    dag = collage_dag()
    old = dag.compile()
    dag.blur.spec["sha"] = "qwetr3"
    report = diff_plans(old, dag.compile()).to_json()
    assert report["counts"] == {
        "changed_itself": 1,
        "changed_upstream": 1,
        "added": 0,
        "removed": 0,
        "renamed": 0,
        "unchanged": 2,
    }
    blur, collage = report["changed"]
    assert blur["fields"] == [{"path": "sha", "kind": "changed", "old": "6f09d", "new": "qwetr3"}]
    assert collage["causes"] == [{"root": "blur", "path": ["blur", "collage"]}]
    json.dumps(report)  # plain JSON all the way down


# -- the command ---------------------------------------------------------------------------


def changed_collage(tmp_path: Path) -> Path:
    spec = tmp_path / "collage2.py"
    spec.write_text((SPECS / "collage.py").read_text().replace('"6f09d"', '"qwetr3"'))
    return spec


def test_the_command_reports_a_tree_stat_and_json(tmp_path: Path) -> None:
    new = changed_collage(tmp_path)
    report = alamode("diff", str(SPECS / "collage.py"), str(new))
    assert report.returncode == 0, report.stderr
    assert "1 changed itself, 1 changed because of upstream, 2 unchanged" in report.stdout
    assert "sha: '6f09d' → 'qwetr3'" in report.stdout
    assert "└── collage  (its input)\n" in report.stdout
    stat = alamode("diff", str(SPECS / "collage.py"), str(new), "--stat", "--all")
    assert stat.stdout.splitlines()[:2] == [
        "self     blur             sha",
        "upstream collage          ← blur",
    ]
    assert "same     download_images" in stat.stdout
    parsed = json.loads(alamode("diff", str(SPECS / "collage.py"), str(new), "--json").stdout)
    assert parsed["same_outputs"] is False


def test_exit_code_says_whether_outputs_differ(tmp_path: Path) -> None:
    plan = tmp_path / "collage.plan.bencode"
    alamode("encode", str(SPECS / "collage.py"), "-o", str(plan))
    same = alamode("diff", str(plan), str(SPECS / "collage.py"), "--exit-code")
    assert same.returncode == 0, same.stderr
    differ = alamode("diff", str(plan), str(changed_collage(tmp_path)), "--exit-code")
    assert differ.returncode == 1


def test_a_bad_side_is_named(tmp_path: Path) -> None:
    corrupt = tmp_path / "bad.bencode"
    corrupt.write_bytes(b"d4:meta")
    result = alamode("diff", str(SPECS / "collage.py"), str(corrupt))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: new side: ")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tasks:\n  a: {deps: [a]}\n")
    result = alamode("diff", str(broken), str(SPECS / "collage.py"), "--exit-code")
    assert result.returncode == 2
    assert "error: old side: " in result.stderr and "depends on itself" in result.stderr
