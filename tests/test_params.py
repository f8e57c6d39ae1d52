"""Parameters: ``${name}`` in spec strings, declared with defaults, given with --param."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a_la_mode import Dag
from a_la_mode.compile.params import Param, ParamError

from .conftest import alamode
from .test_cli import assert_one_line_error

FLOW = """\
params:
  user: {}
  region: {default: eu, choices: [eu, us]}
tasks:
  setup: {spec: {command: 'echo ready > "$ALAMODE_OUTPUT/s"'}}
  fetch:
    deps: [setup]
    spec:
      command: ["sh", "-c", 'printf "%s" "$1" > "$ALAMODE_OUTPUT/user"', "sh", "${user}"]
      env: {REGION: "${region}"}
  report:
    deps: [fetch]
    spec: {command: 'cat "$ALAMODE_INPUT_FETCH/user" > "$ALAMODE_OUTPUT/r"', note: "costs $${5}"}
"""


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    return path


def shown(flow: Path, *params: str) -> dict[str, dict[str, object]]:
    result = alamode("show", str(flow), "--json", *params, cwd=flow.parent)
    assert result.returncode == 0, result.stderr
    tasks: dict[str, dict[str, object]] = json.loads(result.stdout)["tasks"]
    return tasks


def test_values_are_filled_in_before_hashing_and_only_their_users_change(flow: Path) -> None:
    tims = shown(flow, "--param", "user=tims")
    ann = shown(flow, "-p", "user=ann")
    assert tims["fetch"]["command"][-1] == "tims"  # the argument the command receives
    assert tims["fetch"]["env"] == {"REGION": "eu"}  # the default
    assert tims["setup"]["output"] == ann["setup"]["output"]  # uses no parameter
    assert tims["fetch"]["output"] != ann["fetch"]["output"]
    assert tims["report"]["output"] != ann["report"]["output"]  # downstream of one that does
    assert tims["report"]["note"] == "costs ${5}"  # $${ is a literal ${
    us = shown(flow, "-p", "user=tims", "-p", "region=us")
    assert us["fetch"]["env"] == {"REGION": "us"} and us["setup"] == tims["setup"]


def test_a_value_reaches_the_command_as_data_only(flow: Path) -> None:
    """A value with quotes, ``;``, ``$(...)`` and a newline is one argument of an argv
    command: nothing in it runs."""
    nasty = 'x"; touch pwned; $(touch pwned2)\nsecond line'
    store = flow.parent / "store"
    ran = alamode("run", str(flow), "-p", f"user={nasty}", "--store", str(store), cwd=flow.parent)
    assert ran.returncode == 0, ran.stderr
    got = alamode(
        "cat", str(flow), "report", "-p", f"user={nasty}", "--store", str(store), cwd=flow.parent
    )
    assert got.stdout == nasty
    assert not (flow.parent / "pwned").exists() and not (flow.parent / "pwned2").exists()


def test_a_missing_value_names_the_task_the_field_and_the_parameter(flow: Path) -> None:
    result = alamode("encode", str(flow), "-o", "out.bencode", cwd=flow.parent)
    assert_one_line_error(
        result, "task 'fetch': spec.command[4] uses parameter 'user', which has no value"
    )
    assert "--param user=VALUE" in result.stderr
    assert not (flow.parent / "out.bencode").exists()


def test_unknown_undeclared_and_out_of_bounds_parameters_are_refused(
    flow: Path, tmp_path: Path
) -> None:
    unknown = alamode("show", str(flow), "-p", "usr=tims", cwd=tmp_path)
    assert_one_line_error(unknown, "--param usr: no such parameter, did you mean 'user'?")
    outside = alamode("show", str(flow), "-p", "user=tims", "-p", "region=asia", cwd=tmp_path)
    assert_one_line_error(
        outside, "--param region=asia (task 'fetch' uses it): parameter 'region' is one of eu, us"
    )
    malformed = alamode("show", str(flow), "-p", "user", cwd=tmp_path)
    assert_one_line_error(malformed, "--param 'user': write it as NAME=VALUE")
    undeclared = tmp_path / "u.yaml"
    undeclared.write_text(
        "params: {day: {}}\ntasks:\n  a: {spec: {command: 'echo ${dya}', day: '${day}'}}\n"
    )
    assert_one_line_error(
        alamode("show", str(undeclared), "-p", "day=1", cwd=tmp_path),
        "task 'a': spec.command uses ${dya}, which is not a declared parameter, did you mean "
        "'day'?",
    )


def test_a_pipeline_without_parameters_keeps_its_strings_and_takes_no_param(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "plain.yaml"
    spec.write_text("tasks:\n  a: {spec: {command: 'echo ${HOME} > \"${ALAMODE_OUTPUT}/h\"'}}\n")
    assert shown(spec)["a"]["command"] == 'echo ${HOME} > "${ALAMODE_OUTPUT}/h"'
    assert_one_line_error(
        alamode("show", str(spec), "-p", "x=1", cwd=tmp_path),
        "--param x: this pipeline declares no parameters",
    )


def test_a_plan_file_takes_no_param(flow: Path) -> None:
    encoded = alamode("encode", str(flow), "-p", "user=a", "-o", "p.bencode", cwd=flow.parent)
    assert encoded.returncode == 0, encoded.stderr
    result = alamode("status", "p.bencode", "-p", "user=b", cwd=flow.parent)
    assert_one_line_error(result, "p.bencode: a plan's parameters are filled in already")


def test_status_and_explain_follow_the_values(flow: Path) -> None:
    store = str(flow.parent / "store")
    assert alamode("run", str(flow), "-p", "user=a", "-s", store, cwd=flow.parent).returncode == 0
    done = alamode("status", str(flow), "-p", "user=a", "-s", store, "--json", cwd=flow.parent)
    other = alamode("status", str(flow), "-p", "user=b", "-s", store, "--json", cwd=flow.parent)
    state = {row["task"]: row["label"] for row in json.loads(done.stdout)}
    assert set(state.values()) == {"done"}
    state = {row["task"]: row["label"] for row in json.loads(other.stdout)}
    assert state["setup"] == "done" and state["fetch"] != "done"
    why = alamode("explain", str(flow), "fetch", "-p", "user=b", "-s", store, cwd=flow.parent)
    assert why.returncode == 0 and "user" not in why.stderr


def test_a_python_dag_declares_parameters(tmp_path: Path) -> None:
    dag = Dag({}, params={"day": None, "kind": Param("raw", choices=("raw", "clean"))})
    dag.task("get", {"command": ["fetch", "--day", "${day}", "--kind", "${kind}"]})
    plan = dag.compile({"day": "2026-12-01"})
    assert plan.tasks["get"]["command"] == ["fetch", "--day", "2026-12-01", "--kind", "raw"]
    with pytest.raises(ParamError, match="parameter 'kind' is one of raw, clean"):
        dag.compile({"day": "1", "kind": "cooked"})
    with pytest.raises(ParamError, match="parameter 'day', which has no value"):
        dag.compile()
    spec = tmp_path / "p.py"
    spec.write_text(
        "from a_la_mode import Dag\n"
        "dag = Dag({}, params={'day': '2026-01-01'})\n"
        "dag.task('get', {'command': 'echo ${day}'})\n"
    )
    tasks = shown(spec, "-p", "day=2026-12-03")
    assert tasks["get"]["command"] == "echo 2026-12-03"
