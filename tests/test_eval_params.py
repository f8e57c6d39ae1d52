"""--eval-param: one instance of a flow per value of a small expression, never Python."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from a_la_mode.compile.expressions import ExpressionError, evaluate

from .conftest import alamode
from .test_cli import assert_one_line_error
from .test_params import shown

TODAY = datetime.date(2026, 12, 3)

DAILY = """\
params:
  day: {pattern: '\\d{4}-\\d{2}-\\d{2}'}
  region: {default: eu}
tasks:
  setup: {spec: {command: 'echo tools > "$ALAMODE_OUTPUT/t"'}}
  download:
    deps: [setup]
    spec:
      command: ['sh', '-c', 'echo "$1 $2" > "$ALAMODE_OUTPUT/d"', 'sh', '${day}', '${region}']
  report:
    deps: [download]
    spec: {command: 'cat "$ALAMODE_INPUT_DOWNLOAD/d" > "$ALAMODE_OUTPUT/r"'}
"""


@pytest.mark.parametrize(
    ("expression", "values"),
    [
        ("days_range(-2, 0)", ["2026-12-01", "2026-12-02", "2026-12-03"]),
        ("dates('2026-02-27', '2026-03-01')", ["2026-02-27", "2026-02-28", "2026-03-01"]),
        ("months_range(-12, -11)", ["2025-12", "2026-01"]),
        ("range(1, 4)", ["1", "2", "3"]),
        ("['eu', 'us', 3]", ["eu", "us", "3"]),
        ("'only'", ["only"]),
    ],
)
def test_the_expressions(expression: str, values: list[str]) -> None:
    assert evaluate(expression, TODAY) == values


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("__import__('os').system('touch pwned')", "only days_range, dates, months_range and"),
        ("(1).__class__", "use a list of literals"),
        ("open('x')", "no function 'open'"),
        ("days(1)", "no function 'days', did you mean 'dates'?"),
        ("range(1, 4, step=1)", "takes its arguments in order"),
        ("days_range('a', 0)", "these bounds are whole numbers"),
        ("dates('yesterday', '2026-01-01')", "'yesterday' is not a date"),
        ("[True]", "True and False are not values here"),
        ("range(", "is not an expression"),
        ("range(1, 200000)", "at most 100,000"),
        ("range(0)", "gives no values"),
    ],
)
def test_anything_else_is_refused_by_name(expression: str, why: str) -> None:
    with pytest.raises(ExpressionError, match=why.replace("(", r"\(").replace(")", r"\)")):
        evaluate(expression, TODAY)


@pytest.fixture
def daily(tmp_path: Path) -> Path:
    path = tmp_path / "daily.yaml"
    path.write_text(DAILY)
    return path


def test_one_instance_per_value_and_the_rest_shared(daily: Path) -> None:
    tasks = shown(daily, "-E", "day=days_range(-1, 0)", "--today", "2026-12-03")
    assert sorted(tasks) == [
        "download[day=2026-12-02]",
        "download[day=2026-12-03]",
        "report[day=2026-12-02]",
        "report[day=2026-12-03]",
        "setup",  # uses no evaluated parameter: one task, shared
    ]
    assert tasks["report[day=2026-12-03]"]["inputs"] == {
        "download[day=2026-12-03]": tasks["download[day=2026-12-03]"]["output"]
    }
    single = shown(daily, "-p", "day=2026-12-03")
    assert single["download"]["output"] == tasks["download[day=2026-12-03]"]["output"]


def test_the_cross_product_of_two(daily: Path) -> None:
    tasks = shown(daily, "-E", "day=['2026-12-01', '2026-12-02']", "-E", "region=['eu', 'us']")
    assert "download[day=2026-12-01,region=us]" in tasks
    assert len([name for name in tasks if name.startswith("report[")]) == 4


def test_the_next_day_runs_only_that_day_and_targets_name_every_instance(daily: Path) -> None:
    store = ["--store", str(daily.parent / "store")]
    first = alamode(
        "run", str(daily), "-E", "day=days_range(-1, 0)", "--today", "2026-12-03", *store,
        "--json", cwd=daily.parent,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    ran = [json.loads(line) for line in first.stdout.splitlines()]
    assert len([e for e in ran if e["event"] == "succeed"]) == 5
    second = alamode(
        "run", str(daily), "-E", "day=days_range(-1, 0)", "--today", "2026-12-04", *store,
        "--json", cwd=daily.parent,
    )  # fmt: skip
    events = [json.loads(line) for line in second.stdout.splitlines()]
    assert {e["task"] for e in events if e["event"] == "succeed"} == {
        "download[day=2026-12-04]",
        "report[day=2026-12-04]",
    }
    got = alamode(
        "cat", str(daily), "report[day=2026-12-04]", "-E", "day=['2026-12-04']", *store,
        cwd=daily.parent,
    )  # fmt: skip
    assert got.stdout == "2026-12-04 eu\n"  # read through $ALAMODE_INPUT_DOWNLOAD
    dry = alamode(
        "run", str(daily), "-E", "day=['2026-12-05', '2026-12-06']", "--target", "download",
        "--dry-run", "--json", *store, cwd=daily.parent,
    )  # fmt: skip
    assert sorted(json.loads(dry.stdout)["would_run"]) == [
        "download[day=2026-12-05]",
        "download[day=2026-12-06]",
    ]


def test_values_that_cannot_name_a_task_and_double_givings_are_refused(daily: Path) -> None:
    assert_one_line_error(
        alamode("show", str(daily), "-E", "day=['2026/12/01']", cwd=daily.parent),
        "--eval-param day=2026/12/01 (task 'download' uses it): parameter 'day' must match",
    )
    spaced = daily.parent / "free.yaml"
    spaced.write_text("params: {who: {}}\ntasks:\n  a: {spec: {command: 'echo ${who}'}}\n")
    assert_one_line_error(
        alamode("show", str(spaced), "-E", "who=['a b']", cwd=daily.parent),
        "--eval-param who: value 'a b' cannot be part of a task name",
    )
    assert_one_line_error(
        alamode("show", str(daily), "-p", "day=2026-12-01", "-E", "day=['2026-12-02']"),
        "parameter 'day' is given by --param and by --eval-param; keep one",
    )
    assert_one_line_error(
        alamode("show", str(daily), "-E", "day=days_range(0, 0)", "--today", "Tuesday"),
        "--today 'Tuesday' is not a date",
    )


def test_a_matrix_in_the_file_or_the_dag_does_the_same(tmp_path: Path) -> None:
    spec = tmp_path / "m.yaml"
    spec.write_text(
        "params: {region: {}, size: {default: s}}\n"
        "matrix: {region: [eu, us]}\n"
        "tasks:\n"
        "  base: {spec: {command: 'true'}}\n"
        "  fit: {deps: [base], spec: {command: 'echo ${region} ${size}'}}\n"
    )
    assert sorted(shown(spec)) == ["base", "fit[region=eu]", "fit[region=us]"]
    assert sorted(shown(spec, "-p", "region=eu")) == ["base", "fit"]  # one value wins
    assert sorted(shown(spec, "-E", "region=['ap']")) == ["base", "fit[region=ap]"]

    from a_la_mode import Dag

    dag = Dag({}, params={"region": None})
    dag.task("fit", {"command": "echo ${region}"})
    plan = dag.matrix(region=["eu", "us"]).compile()
    assert sorted(plan.tasks) == ["fit[region=eu]", "fit[region=us]"]
    assert plan.tasks["fit[region=us]"]["command"] == "echo us"
    spec.write_text("params: {region: {}}\nmatrix: {region: []}\ntasks: {a: {}}\n")
    assert_one_line_error(
        alamode("show", str(spec), cwd=tmp_path), "parameter 'region' is given an empty list"
    )
