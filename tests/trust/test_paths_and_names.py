"""Paths a command is given, task names, and the variables that carry inputs."""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from pathlib import Path

import bencodepy
import pytest

from a_la_mode import SpecError, TaskDef, compile_plan, load_plan
from a_la_mode.errors import PlanError

from ..conftest import alamode
from ..test_cli_run import spec


def test_a_command_that_changes_directory_still_writes_its_output(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    spec(
        tmp_path,
        """
tasks:
  a:
    spec:
      command: 'cd sub && mkdir -p "$ALAMODE_OUTPUT" && echo data > "$ALAMODE_OUTPUT/f"'
  b:
    deps: [a]
    spec:
      command: >-
        cd sub && cat "$ALAMODE_INPUT_A/f" > "$ALAMODE_OUTPUT/copy"
        && env > "$ALAMODE_OUTPUT/env"
""",
    )
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    outputs = {row["task"]: tmp_path / ".alamode" / "outputs" / row["output"] for row in status}
    assert (outputs["a"] / "f").read_text() == "data\n"
    assert (outputs["b"] / "copy").read_text() == "data\n"
    assert not (tmp_path / "sub" / ".alamode").exists()  # nothing landed beside the command
    variables = dict(
        line.split("=", 1)
        for line in (outputs["b"] / "env").read_text().splitlines()
        if "=" in line
    )
    paths = [variables["ALAMODE_OUTPUT"], variables["ALAMODE_INPUT_A"]]
    paths += json.loads(variables["ALAMODE_INPUTS"]).values()
    assert all(os.path.isabs(path) for path in paths)


@pytest.mark.parametrize("other", ["data_a", "Data.A", "DATA-A"])
def test_dependencies_that_would_share_an_input_variable_are_refused(other: str) -> None:
    tasks = [
        TaskDef("data-a", {"command": "true"}),
        TaskDef(other, {"command": "false"}),
        TaskDef("join", {"command": "true"}, ["data-a", other]),
    ]
    with pytest.raises(SpecError) as caught:
        compile_plan({}, tasks)
    assert str(caught.value) == (
        f"task 'join': its dependencies 'data-a' and {other!r} would both be given as "
        "ALAMODE_INPUT_DATA_A; rename one of them"
    )


def test_the_command_line_refuses_clashing_inputs_in_one_line(tmp_path: Path) -> None:
    spec(
        tmp_path,
        "tasks:\n  data-a: {}\n  data_a: {}\n  join: {deps: [data-a, data_a]}\n",
    )
    result = alamode("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "would both be given as ALAMODE_INPUT_DATA_A" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".alamode").exists()


def test_a_plan_with_clashing_inputs_is_refused_when_read(tmp_path: Path) -> None:
    """A plan written by another tool (or by an older alamode) is checked as it is read."""
    tasks: dict[str, dict[str, object]] = {}
    for name, inputs in (("A", {}), ("a", {}), ("c", {"A": "", "a": ""})):
        entry: dict[str, object] = {"inputs": {dep: tasks[dep]["output"] for dep in inputs}}
        entry["output"] = hashlib.sha256(bencodepy.encode(entry)).hexdigest()
        tasks[name] = entry
    plan = {
        "format": 1,
        "meta": {},
        "tasks": tasks,
        "toposort": [["A", "a"], ["c"]],
        "toposort_flatten": ["A", "a", "c"],
    }
    path = tmp_path / "p.bencode"
    path.write_bytes(bencodepy.encode(plan))
    with pytest.raises(PlanError, match="would both be given as ALAMODE_INPUT_A"):
        load_plan(path)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("task\n", "contains '\\n'"),
        ("\ntask", "contains '\\n'"),
        ("t" * 256, "is 256 characters long; a task name has at most 255"),
        ("tâche", "contains 'â'"),
    ],
)
def test_names_are_bounded_and_whole(name: str, why: str) -> None:
    with pytest.raises(SpecError, match="task name") as caught:
        compile_plan({}, [TaskDef(name, {"command": "true"})])
    assert why in str(caught.value)


def test_a_name_of_255_characters_is_fine() -> None:
    name = "t" * 255
    assert compile_plan({}, [TaskDef(name, {})]).output(name)


def test_a_plan_naming_a_task_with_a_final_newline_is_refused(tmp_path: Path) -> None:
    data = compile_plan({}, [TaskDef("abcd", {})]).to_bytes()
    path = tmp_path / "p.bencode"
    path.write_bytes(data.replace(b"4:abcd", b"4:abc\n"))
    with pytest.raises(PlanError, match="not a valid task name"):
        load_plan(path)


def test_spec_strings_are_hashed_as_written_not_normalised() -> None:
    """Names are ASCII, so they need no normalisation; spec strings are hashed as their
    UTF-8 bytes, so an NFC and an NFD spelling are two different specs (docs/plan-format.md)."""
    word = "café"
    nfc = compile_plan({}, [TaskDef("a", {"command": unicodedata.normalize("NFC", word)})])
    nfd = compile_plan({}, [TaskDef("a", {"command": unicodedata.normalize("NFD", word)})])
    assert nfc.output("a") != nfd.output("a")
