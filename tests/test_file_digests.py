"""File digests: a task's ``files`` are hashed into its spec, so editing one reruns it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import alamode
from .test_cli import assert_one_line_error

SPEC = """\
tasks:
  prep: {spec: {command: 'true'}}
  transform:
    deps: [prep]
    spec: {command: 'cat transform.sh sql/*.sql > "$ALAMODE_OUTPUT/t"', files: [transform.sh, sql/]}
  report:
    deps: [transform]
    spec: {command: 'cp "$ALAMODE_INPUT_TRANSFORM/t" "$ALAMODE_OUTPUT/r"'}
  other: {spec: {command: 'true', files: [other.sh]}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "a.sql").write_text("select 1;\n")
    (tmp_path / "transform.sh").write_text("echo one\n")
    (tmp_path / "other.sh").write_text("echo other\n")
    (tmp_path / "flow.yaml").write_text(SPEC)
    return tmp_path


def ran(project: Path) -> list[str]:
    result = alamode("run", "flow.yaml", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return sorted(e["task"] for e in events if e["event"] == "succeed")


def test_editing_a_listed_file_reruns_exactly_its_tasks(project: Path) -> None:
    assert ran(project) == ["other", "prep", "report", "transform"]
    assert ran(project) == []
    (project / "transform.sh").write_text("echo two\n")
    assert ran(project) == ["report", "transform"]
    (project / "sql" / "b.sql").write_text("select 2;\n")  # a new file in a listed folder
    assert ran(project) == ["report", "transform"]
    (project / "other.sh").touch()  # its bytes did not change: nothing runs
    assert ran(project) == []


def test_diff_names_the_files_that_changed(project: Path) -> None:
    assert alamode("encode", "flow.yaml", "-o", "old.plan", cwd=project).returncode == 0
    (project / "transform.sh").write_text("echo two\n")
    (project / "sql" / "b.sql").write_text("select 2;\n")
    (project / "sql" / "a.sql").unlink()
    said = alamode("diff", "old.plan", "flow.yaml", cwd=project).stdout
    for line in ("file transform.sh changed", "file sql/b.sql added", "file sql/a.sql removed"):
        assert line in said
    spec = json.loads(alamode("show", "flow.yaml", "--json", cwd=project).stdout)
    assert set(spec["tasks"]["transform"]["files"]) == {"transform.sh", "sql/"}


def test_missing_files_and_paths_leading_out_are_refused(project: Path, tmp_path: Path) -> None:
    (project / "transform.sh").unlink()
    assert_one_line_error(
        alamode("encode", "flow.yaml", cwd=project),
        "task 'transform': spec.files: 'transform.sh' does not exist in the spec's folder",
    )
    (project / "transform.sh").write_text("echo one\n")
    os.symlink("/etc/hostname", project / "sql" / "leak.sql")
    assert_one_line_error(
        alamode("encode", "flow.yaml", cwd=project),
        "spec.files: 'sql/leak.sql' is a link leading out of the spec's folder",
    )
    (project / "sql" / "leak.sql").unlink()
    (project / "flow.yaml").write_text(SPEC.replace("[other.sh]", "[../outside.sh]"))
    assert_one_line_error(
        alamode("encode", "flow.yaml", cwd=project),
        "spec.files: '../outside.sh' must be a path inside the spec's folder",
    )
    assert not list(project.glob("*.plan.bencode"))  # nothing written


def test_a_task_runs_among_exactly_the_bytes_that_were_hashed(
    project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spec = str(project / "flow.yaml")
    store = ["--store", str(tmp_path / "store")]
    result = alamode("run", spec, *store, cwd=elsewhere)  # its files are found all the same
    assert result.returncode == 0, result.stderr
    got = alamode("cat", spec, "transform", *store, cwd=elsewhere)
    assert got.stdout == "echo one\nselect 1;\n"
    (project / "flow.yaml").write_text(
        SPEC.replace("'true', files: [other.sh]", "'echo x >> other.sh', files: [other.sh]")
    )
    alamode("run", spec, *store, cwd=elsewhere)  # read-only, except to root
    assert (project / "other.sh").read_text() == "echo other\n"  # it wrote to a copy


def test_a_file_changed_after_compiling_fails_its_task_and_records_nothing(
    project: Path,
) -> None:
    assert alamode("encode", "flow.yaml", "-o", "flow.plan", cwd=project).returncode == 0
    (project / "transform.sh").write_text("echo edited\n")  # the plan still says "echo one"
    result = alamode("run", "flow.plan", "--json", cwd=project)
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (failed,) = [e for e in events if e["event"] == "fail"]
    assert failed["task"] == "transform"
    assert failed["detail"].startswith("its file transform.sh changed since the plan was compiled")
    status = alamode("status", "flow.plan", "--json", cwd=project)
    labels = {row["task"]: row["label"] for row in json.loads(status.stdout)}
    assert labels["transform"] == "failed last time" and labels["prep"] == "done"


def test_a_dag_compiled_in_python_digests_its_files_from_the_current_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from a_la_mode import Dag

    monkeypatch.chdir(project)
    dag = Dag({})
    dag.task("t", {"command": "sh transform.sh", "files": ["transform.sh"]})
    before = dag.compile()
    assert set(before.tasks["t"]["files"]) == {"transform.sh"}
    (project / "transform.sh").write_text("echo two\n")
    assert dag.compile().output("t") != before.output("t")
