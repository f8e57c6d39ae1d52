"""Spec files: Python modules holding a Dag, and declarative JSON/YAML/TOML files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a_la_mode import SpecError, SpecFileError, UnrepresentableValue
from a_la_mode.compile.specfile import PipelineFile, compile_spec_file

from .conftest import GOLDEN, SPECS


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_collage_spec_compiles_to_the_golden_ids() -> None:
    plan = compile_spec_file(str(SPECS / "collage.py"))
    assert {name: plan.output(name) for name in plan.tasks} == GOLDEN


def test_the_diamond_is_the_same_plan_in_python_yaml_and_toml() -> None:
    plans = [
        compile_spec_file(str(SPECS / name))
        for name in ("diamond.py", "diamond.yaml", "diamond.toml")
    ]
    assert plans[0].to_bytes() == plans[1].to_bytes() == plans[2].to_bytes()
    assert plans[0].spec("user-details") == {}  # a pure join point
    assert sorted(plans[0].inputs("user-details")) == ["user-orders", "user-profiles"]


def test_json_spec_files_work_too(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "p.json",
        json.dumps(
            {
                "meta": {"owner": "me"},
                "tasks": {"a": {"spec": {"command": "x"}}, "b": {"deps": ["a"]}},
            }
        ),
    )
    plan = compile_spec_file(source)
    assert plan.toposort == [["a"], ["b"]]


def test_a_dag_can_be_picked_by_name(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "two.py",
        "from a_la_mode import Dag\n"
        "daily = Dag({'s': 'daily'})\ndaily.task('a')\nhourly = Dag({'s': 'hourly'})\n",
    )
    assert compile_spec_file(source + ":daily").meta == {"s": "daily"}
    with pytest.raises(SpecFileError, match=r"several Dags \(daily, hourly\); pick one as"):
        compile_spec_file(source)
    with pytest.raises(SpecFileError, match=r"no module-level Dag named 'daly', did you mean"):
        compile_spec_file(source + ":daly")


def test_a_module_without_a_dag_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match=r"defines no Dag at module level"):
        compile_spec_file(write(tmp_path, "none.py", "x = 1\n"))


def test_a_spec_file_can_import_its_neighbours(tmp_path: Path) -> None:
    write(tmp_path, "shared.py", "IMAGE = 'busybox'\n")
    source = write(
        tmp_path,
        "uses.py",
        "from a_la_mode import Dag\nfrom shared import IMAGE\n"
        "dag = Dag()\ndag.task('a', {'image': IMAGE})\n",
    )
    assert compile_spec_file(source).spec("a") == {"image": "busybox"}


def test_a_raising_spec_file_shows_the_users_traceback_not_ours(tmp_path: Path) -> None:
    source = write(
        tmp_path, "bad.py", "def helper():\n    raise RuntimeError('boom')\n\nhelper()\n"
    )
    with pytest.raises(SpecFileError, match=r"bad.py raised RuntimeError: boom") as caught:
        compile_spec_file(source)
    shown = caught.value.user_traceback or ""
    assert 'bad.py", line 4, in <module>' in shown
    assert 'bad.py", line 2, in helper' in shown
    assert "importlib" not in shown and "a_la_mode" not in shown


def test_a_dsl_error_in_a_spec_file_names_the_line(tmp_path: Path) -> None:
    source = write(
        tmp_path, "dup.py", "from a_la_mode import Dag\ndag = Dag()\ndag.task('a')\ndag.task('a')\n"
    )
    with pytest.raises(SpecError, match=r"dup.py:4: task 'a' is defined twice"):
        compile_spec_file(source)


def test_a_float_in_yaml_is_refused_with_its_path(tmp_path: Path) -> None:
    source = write(tmp_path, "f.yaml", "tasks:\n  blur:\n    spec:\n      threshold: 0.5\n")
    with pytest.raises(UnrepresentableValue, match=r"f.yaml: tasks.blur.spec.threshold is a float"):
        compile_spec_file(source)


def test_yaml_booleans_are_refused_not_silently_mapped(tmp_path: Path) -> None:
    source = write(tmp_path, "b.yaml", "tasks:\n  a:\n    spec:\n      debug: yes\n")
    with pytest.raises(UnrepresentableValue, match=r"tasks.a.spec.debug is a bool"):
        compile_spec_file(source)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.yaml", "tasks:\n  a: {}\n  a: {}\n", "duplicate key 'a' on line 3"),
        ("d.json", '{"tasks": {"a": {}, "a": {}}}', "duplicate key 'a'"),
        ("d.toml", "[tasks.a]\n[tasks.a]\n", "not valid TOML"),
        ("bad.yaml", "tasks: [unclosed\n", "not valid YAML"),
        (
            "typo.yaml",
            "tasks:\n  a:\n    dep: [b]\n",
            "tasks.a.dep: unknown field; did you mean 'deps'? (fields here: deps, spec)",
        ),
        ("list.yaml", "- a\n", "the top level must be a mapping"),
        ("nodeps.yaml", "tasks:\n  a:\n    deps: [b]\n", "unknown task 'b'"),
        ("ver.yaml", "format: 2\ntasks: {}\n", "format: Input should be 1"),
    ],
    ids=[
        "yaml-dup",
        "json-dup",
        "toml-dup",
        "yaml-syntax",
        "unknown-field",
        "not-mapping",
        "unknown-dep",
        "future-format",
    ],
)
def test_bad_declarative_files_get_one_line_errors(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        compile_spec_file(write(tmp_path, name, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_suffixes_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match=r"unknown spec file type '.txt'"):
        compile_spec_file(write(tmp_path, "x.txt", ""))
    with pytest.raises(SpecFileError, match=r"no such spec file"):
        compile_spec_file(str(tmp_path / "absent.yaml"))


def test_the_schema_documents_tasks_deps_and_spec() -> None:
    schema = PipelineFile.model_json_schema()
    task = schema["$defs"]["TaskEntry"]
    assert set(task["properties"]) == {"deps", "spec"}
    assert task["additionalProperties"] is False
