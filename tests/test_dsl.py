"""The Python DSL: the original style keeps working, and the modern forms compile as expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from a_la_mode import Dag, SpecError, Task, UnknownTaskError, load_plan, pp

from .conftest import GOLDEN


def deps_of(dag: Dag) -> dict[str, list[str]]:
    plan = dag.compile()
    return {name: sorted(plan.inputs(name)) for name in plan.tasks}


def test_rshift_chains_and_fans_out_and_in() -> None:
    with Dag() as dag:
        a, b, c, d = (Task(n, {"command": f"echo {n}"}) for n in "abcd")
        a >> [b, c] >> d
    assert deps_of(dag) == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_lshift_reads_the_other_way() -> None:
    dag = Dag()
    a, b, c = dag.task("a"), dag.task("b"), dag.task("c")
    c << [a, b]
    [a, b] << dag.task("root")
    assert deps_of(dag) == {"a": ["root"], "b": ["root"], "c": ["a", "b"], "root": []}


def test_names_with_dashes_are_reached_by_subscript() -> None:
    dag = Dag()
    dag.task("user-details", {"x": "1"})
    assert dag["user-details"].spec == {"x": "1"}
    assert "user-details" in dag


def test_an_unknown_task_suggests_the_closest_name(collage: Dag) -> None:
    with pytest.raises(UnknownTaskError, match="no task 'colage', did you mean 'collage'"):
        collage.colage  # noqa: B018 - the lookup is the test
    with pytest.raises(KeyError):
        collage["nothing-like-it"]


def test_defining_a_name_twice_fails_at_the_second_definition() -> None:
    dag = Dag()
    dag.task("a")
    with pytest.raises(SpecError, match="'a' is defined twice"):
        dag.task("a")


def test_a_bad_name_fails_where_it_is_written() -> None:
    with pytest.raises(SpecError, match="starts with '-'"):
        Dag().task("-x")


def test_the_decorator_names_the_task_after_the_function() -> None:
    dag = Dag()
    download = dag.task("download", {"command": "fetch"})

    @dag.define(deps=[download])
    def blur() -> dict[str, str]:
        return {"command": "blur"}

    @dag.define(name="edge-enhance", deps=[download])
    def edge() -> dict[str, str]:
        return {"command": "edge"}

    assert isinstance(blur, Task)
    assert deps_of(dag) == {"download": [], "blur": ["download"], "edge-enhance": ["download"]}


def test_groups_compile_to_qualified_names_and_link_as_a_whole() -> None:
    dag = Dag()
    start = dag.task("start")
    with dag.group("ingest") as ingest:
        fetch = ingest.task("fetch")
        with ingest.group("clean") as clean:
            dedupe = clean.task("dedupe")
            Task("validate").add_dep(dedupe)  # made inside the group's ``with``: joins it
        fetch >> dedupe
    report = dag.task("report")
    start >> ingest >> report
    assert [t.name for t in ingest] == [
        "ingest.fetch",
        "ingest.clean.dedupe",
        "ingest.clean.validate",
    ]
    assert ingest.fetch is fetch and ingest["clean.dedupe"] is dedupe
    assert deps_of(dag) == {
        "start": [],
        "ingest.fetch": ["start"],
        "ingest.clean.dedupe": ["ingest.fetch"],
        "ingest.clean.validate": ["ingest.clean.dedupe"],
        "report": ["ingest.clean.validate"],
    }


def test_a_dependency_outside_the_dag_is_refused() -> None:
    dag = Dag()
    stray = Task("stray")
    dag.task("a").add_dep(stray)
    with pytest.raises(SpecError, match="depends on 'stray', which is not a task of this Dag"):
        dag.compile()


def test_tasks_made_outside_can_be_added() -> None:
    a = Task("a", {"x": "1"})
    b = Task("b", deps=[a])
    dag = Dag({}, [a, b])
    assert deps_of(dag) == {"a": [], "b": ["a"]}


def test_save_load_and_bencode_work_as_in_the_original(collage: Dag, tmp_path: Path) -> None:
    path = tmp_path / "collage.plan.bencode"
    collage.save(path)
    assert path.read_bytes() == collage.bencode()
    assert Dag.load(path) == collage.encode()
    assert {n: t["output"] for n, t in load_plan(path).tasks.items()} == GOLDEN


def test_pp_pretty_prints_the_encoding(collage: Dag, capsys: pytest.CaptureFixture[str]) -> None:
    pp(collage.encode())
    printed = capsys.readouterr().out
    assert "'toposort_flatten': ['download_images', 'blur', 'edge_enhance', 'collage']" in printed


def test_meta_is_also_reachable_as_spec_like_the_original() -> None:
    dag = Dag({"schedule": "@daily"})
    assert dag.spec is dag.meta
