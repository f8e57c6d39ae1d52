"""Revoking a bad result: never used again, its task and everything built on it rerun."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from a_la_mode import TaskDef, compile_plan
from a_la_mode.review.queries import task_states

from ..conftest import alamode
from ..test_blobstore import (  # noqa: F401 - fixtures
    Where,
    aws_credentials,
    moto_server,
    run,
    where,
)
from ..test_cli_run import spec, start, wait_for

PIPELINE = """
tasks:
  raw: {spec: {command: 'echo raw > "$ALAMODE_OUTPUT/f"'}}
  clean: {deps: [raw], spec: {command: 'cat "$ALAMODE_INPUT_RAW/f" > "$ALAMODE_OUTPUT/f"'}}
  report: {deps: [clean], spec: {command: 'cat "$ALAMODE_INPUT_CLEAN/f" > "$ALAMODE_OUTPUT/f"'}}
  other: {spec: {command: 'echo other > "$ALAMODE_OUTPUT/f"'}}
"""


def states(tmp_path: Path) -> dict[str, dict[str, str]]:
    rows = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    return {row["task"]: row for row in rows}


def test_a_revoked_output_and_all_built_on_it_run_again(tmp_path: Path) -> None:
    spec(tmp_path, PIPELINE)
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    raw = states(tmp_path)["raw"]["output"]
    dry = alamode("revoke", "raw", "--reason", "bad sensor", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "would revoke raw" in dry.stdout
    assert {row["label"] for row in states(tmp_path).values()} == {"done"}
    result = alamode("revoke", raw[:10], "--reason", "bad sensor", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    revoked = json.loads(result.stdout)["revoked"]
    assert [r["task"] for r in revoked] == ["raw", "clean", "report"]
    assert revoked[0]["reason"] == "bad sensor"
    assert revoked[1]["reason"] == f"built on revoked {raw[:12]}…: bad sensor"
    assert all(r["who"] for r in revoked)
    now = states(tmp_path)
    assert now["other"]["label"] == "done"
    assert {now[t]["label"] for t in ("raw", "clean", "report")} == {"revoked"}
    assert "bad sensor; it will run again" in now["raw"]["reason"]
    tree = json.loads(alamode("provenance", raw, "--json", cwd=tmp_path).stdout)
    assert tree["task"] == "raw" and "bad sensor" in tree["revoked"]
    explained = alamode("explain", "p.yaml", "report", cwd=tmp_path).stdout
    assert explained.startswith("report: revoked: revoked by ")
    rerun = alamode("run", "p.yaml", cwd=tmp_path)
    assert "4 tasks: 1 already done, 3 succeeded" in rerun.stderr
    assert {row["label"] for row in states(tmp_path).values()} == {"done"}
    again = alamode("revoke", "other", "--reason", "", cwd=tmp_path)
    assert again.returncode == 2 and "--reason is empty" in again.stderr


def test_gc_removes_what_was_revoked(tmp_path: Path) -> None:
    spec(tmp_path, PIPELINE)
    alamode("run", "p.yaml", cwd=tmp_path)
    alamode("revoke", "report", "--reason", "typo", cwd=tmp_path)
    kept = list((tmp_path / ".alamode" / "revoked").iterdir())
    assert len(kept) == 1  # kept for inspection
    assert alamode("gc", "--yes", cwd=tmp_path).returncode == 0
    assert list((tmp_path / ".alamode" / "revoked").iterdir()) == []


def test_a_run_in_progress_fails_a_task_whose_input_is_revoked(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  up: {spec: {command: 'echo up > "$ALAMODE_OUTPUT/f"'}}
  down:
    deps: [up]
    spec:
      command: >-
        touch "$PWD/started"; while [ ! -f "$PWD/go" ]; do sleep 0.05; done;
        echo down > "$ALAMODE_OUTPUT/f"
""",
    )
    runner = start(tmp_path, "run", "p.yaml")
    wait_for(tmp_path / "started")
    deadline = time.monotonic() + 30
    while states(tmp_path)["up"]["label"] != "done":  # recorded with the next group commit
        assert time.monotonic() < deadline
        time.sleep(0.1)
    revoked = alamode("revoke", "up", "--reason", "wrong input file", cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    (tmp_path / "go").touch()
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 1
    assert "its input up was revoked during the run: wrong input file" in out
    assert states(tmp_path)["down"]["label"] != "done"
    assert runner.returncode != -signal.SIGKILL


def test_revocation_reaches_every_machine_of_a_blob_store(where: Where) -> None:  # noqa: F811
    from a_la_mode.store.revocation import revoke

    plan = compile_plan(
        {},
        [
            TaskDef("a", {"command": 'echo a > "$ALAMODE_OUTPUT/f"'}),
            TaskDef("b", {"command": 'cat "$ALAMODE_INPUT_A/f" > "$ALAMODE_OUTPUT/f"'}, ["a"]),
        ],
    )
    one = where.machine("one")
    run(plan, one)
    records = revoke(one, plan.output("a"), "bad", dry_run=False)
    assert [r["task"] for r in records] == ["a", "b"]
    two = where.machine("two")
    labels = {s.task: s.label for s in task_states(plan, two, None)}
    assert labels == {"a": "revoked", "b": "revoked"}
    report, kinds = run(plan, one)  # the machine that knew it done makes it again
    assert report.scheduler.succeeded and sorted(kinds["start"]) == ["a", "b"]
    assert {s.label for s in task_states(plan, two, None)} == {"done"}


def test_the_gc_dry_run_lists_exactly_what_yes_removes(tmp_path: Path) -> None:
    spec(tmp_path, PIPELINE)
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    assert alamode("run", "p.yaml", "--force", "other", cwd=tmp_path).returncode == 0
    assert alamode("revoke", "report", "--reason", "typo", cwd=tmp_path).returncode == 0
    plan = json.loads(alamode("show", "p.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    dry = alamode("gc", "--json", cwd=tmp_path)
    listed = json.loads(dry.stdout)
    assert {(e["output"], e["kind"]) for e in listed["set_aside"]} == {
        (states(tmp_path)["other"]["output"], "replaced"),
        (states(tmp_path)["report"]["output"], "revoked"),
    }
    assert listed["kept_plans"] == [plan]
    text = alamode("gc", cwd=tmp_path)
    assert "would remove  (replaced)" in text.stdout and "would remove  (revoked)" in text.stdout
    assert f"kept plan ({plan[:12]})" in text.stderr
    on_disk = {
        p.name.split(".")[0]
        for d in ("revoked", "replaced")
        for p in (tmp_path / ".alamode" / d).iterdir()
    }
    assert on_disk == {e["output"] for e in listed["set_aside"]}
    done = json.loads(alamode("gc", "--yes", "--json", cwd=tmp_path).stdout)
    assert done["set_aside"] == listed["set_aside"]
    assert [p for d in ("revoked", "replaced") for p in (tmp_path / ".alamode" / d).iterdir()] == []


def test_status_renders_every_label_as_a_table(tmp_path: Path) -> None:
    """The table, not only --json: a label without a colour of its own crashed it."""
    spec(tmp_path, PIPELINE)
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    assert alamode("revoke", "clean", "--reason", "[bold]markup[/] in a reason", cwd=tmp_path)
    table = alamode("status", "p.yaml", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "revoked" in table.stdout and "[bold]markup[/] in a reason" in table.stdout
