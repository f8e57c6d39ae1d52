"""No success is recorded that is not true: an input changed in place by its reader, a
marker whose own upload is gone, a revocation racing the group commit."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from ..conftest import alamode, events_of
from ..test_cli_run import spec, start, wait_for

REWRITES_ITS_INPUT = """
tasks:
  raw: {spec: {command: 'echo good > "$ALAMODE_OUTPUT/data"'}}
  reader:
    deps: [raw]
    spec:
      command: >-
        chmod -R u+w "$ALAMODE_INPUT_RAW" 2>/dev/null;
        echo bad > "$ALAMODE_INPUT_RAW/data"; cp "$ALAMODE_INPUT_RAW/data" "$ALAMODE_OUTPUT/"
"""


def labels(
    tmp_path: Path, *store: str, env: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    rows = json.loads(alamode("status", "p.yaml", "--json", *store, cwd=tmp_path, env=env).stdout)
    return {row["task"]: row for row in rows}


@pytest.mark.parametrize("store", [[], ["--store", "file://{tmp}/bucket"]], ids=["dir", "blob"])
def test_a_task_that_rewrites_its_input_fails_and_nothing_false_is_recorded(
    tmp_path: Path, store: list[str]
) -> None:
    store = [part.format(tmp=tmp_path) for part in store]
    spec(tmp_path, REWRITES_ITS_INPUT)
    result = alamode("run", "p.yaml", *store, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    said = result.stdout + result.stderr
    assert "it changed its input raw (its file data was modified)" in said
    states = labels(tmp_path, *store)
    assert states["reader"]["label"] != "done"
    raw = states["raw"]["output"]
    if store:  # the bucket's copy is intact: only this machine's copy was dropped
        assert "the store's is intact" in said
        assert states["raw"]["label"] == "done"
        cat = alamode("cat", "p.yaml", "raw", *store, cwd=tmp_path)
        assert cat.stdout == "good\n", cat.stderr
    else:  # the changed output is revoked (kept in revoked/ for inspection) and runs again
        assert "is revoked (changed in place by task reader) and will run again" in said
        assert states["raw"]["label"] == "revoked"
        assert "changed in place by task reader" in states["raw"]["reason"]
        assert not (tmp_path / ".alamode" / "outputs" / raw).exists()
    assert alamode("verify", *store, cwd=tmp_path).returncode == 0
    again = alamode("run", "p.yaml", "--target", "raw", *store, "--json", cwd=tmp_path)
    assert again.returncode == 0
    cat = alamode("cat", "p.yaml", "raw", *store, cwd=tmp_path)
    assert cat.stdout == "good\n", cat.stderr


def test_a_hard_link_to_an_input_is_not_a_change(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  raw: {spec: {command: 'echo good > "$ALAMODE_OUTPUT/data"'}}
  linker: {deps: [raw], spec: {command: 'ln "$ALAMODE_INPUT_RAW/data" "$ALAMODE_OUTPUT/data"'}}
""",
    )
    result = alamode("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {row["label"] for row in labels(tmp_path).values()} == {"done"}


FUNCTION = """
from pathlib import Path


def spoil(output: Path, inputs: dict[str, Path]) -> None:
    data = inputs["raw"] / "data"
    data.chmod(0o644)
    data.write_text("bad\\n")
"""

FUNCTION_PIPELINE = """
from a_la_mode import Dag
from tasks import spoil

dag = Dag()
raw = dag.task("raw", {"command": "echo good > $ALAMODE_OUTPUT/data"})
dag.function(spoil, deps=[raw])
"""


@pytest.mark.parametrize("engine", ["local", "inprocess"])
def test_a_function_task_that_rewrites_its_input_fails(tmp_path: Path, engine: str) -> None:
    (tmp_path / "tasks.py").write_text(FUNCTION)
    (tmp_path / "pipeline.py").write_text(FUNCTION_PIPELINE)
    result = alamode("run", "pipeline.py", "--engine", engine, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "it changed its input raw (its file data was modified)" in result.stdout
    rows = json.loads(alamode("status", "pipeline.py", "--json", cwd=tmp_path).stdout)
    assert {row["task"]: row["label"] for row in rows}["spoil"] != "done"


def test_a_marker_whose_own_upload_is_gone_is_no_success(tmp_path: Path) -> None:
    """Another runner's orphan upload beside it must not make it count."""
    spec(
        tmp_path,
        """
tasks:
  a: {spec: {command: 'echo a > "$ALAMODE_OUTPUT/f"'}}
  b: {deps: [a], spec: {command: 'cat "$ALAMODE_INPUT_A/f" > "$ALAMODE_OUTPUT/f"'}}
""",
    )
    store = ["--store", f"file://{tmp_path}/bucket"]
    assert alamode("run", "p.yaml", *store, cwd=tmp_path).returncode == 0
    a = labels(tmp_path, *store)["a"]["output"]
    uploads = tmp_path / "bucket" / "outputs" / a
    (own,) = list(uploads.iterdir())
    marker = json.loads((tmp_path / "bucket" / "success" / a).read_text())
    assert marker["upload"] == own.name
    orphan = uploads / ("0" * 32)
    shutil.copytree(own, orphan)  # a runner killed before its marker left this
    shutil.rmtree(own)
    other = {"ALAMODE_CACHE": str(tmp_path / "other")}  # a machine with no cached copy
    states = labels(tmp_path, *store, env=other)
    assert states["a"]["label"] != "done"
    result = alamode("run", "p.yaml", "--target", "a", *store, "--json", cwd=tmp_path, env=other)
    assert result.returncode == 0, result.stderr
    started = [e["task"] for e in events_of(result.stdout) if e["event"] == "start"]
    assert started == ["a"]
    assert alamode("cat", "p.yaml", "a", *store, cwd=tmp_path, env=other).stdout == "a\n"
    assert alamode("run", "p.yaml", *store, cwd=tmp_path, env=other).returncode == 0


@pytest.mark.parametrize("store", [[], ["--store", "file://{tmp}/bucket"]], ids=["dir", "blob"])
def test_a_revocation_while_a_success_waits_for_its_commit(
    tmp_path: Path, store: list[str]
) -> None:
    """The command ended and its output is published; the success waits in the group
    commit's batch; the input is revoked then. The success must not be recorded."""
    store = [part.format(tmp=tmp_path) for part in store]
    spec(
        tmp_path,
        """
tasks:
  up: {spec: {command: 'echo up > "$ALAMODE_OUTPUT/f"'}}
  down: {deps: [up], spec: {command: 'cat "$ALAMODE_INPUT_UP/f" > "$ALAMODE_OUTPUT/f"'}}
""",
    )
    assert alamode("run", "p.yaml", "--target", "up", *store, cwd=tmp_path).returncode == 0
    pause = {
        "ALAMODE_FAULT_PAUSE": "before-commit",
        "ALAMODE_FAULT_READY": str(tmp_path / "paused"),
        "ALAMODE_FAULT_RESUME": str(tmp_path / "resume"),
    }
    runner = start(tmp_path, "run", "p.yaml", *store, env=pause)
    wait_for(tmp_path / "paused")
    revoked = alamode("revoke", "up", "--reason", "bad sensor", *store, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    (tmp_path / "resume").touch()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 1, err
    assert "its input up" in out and "was revoked before it was recorded: bad sensor" in out
    states = labels(tmp_path, *store)
    assert states["down"]["label"] != "done" and states["up"]["label"] == "revoked"
    assert alamode("verify", *store, cwd=tmp_path).returncode == 0
    rerun = alamode("run", "p.yaml", *store, cwd=tmp_path)
    assert rerun.returncode == 0 and "2 succeeded" in rerun.stderr, rerun.stderr
    assert {row["label"] for row in labels(tmp_path, *store).values()} == {"done"}
    assert os.environ.get("ALAMODE_FAULT_PAUSE") is None


@pytest.mark.parametrize(
    "step", ["before-rename", "replaced-aside", "before-record", "before-commit"]
)
def test_run_force_killed_at_each_step_converges(tmp_path: Path, step: str) -> None:
    """kill -9 of 'run --force' anywhere: the next run ends with a record that matches the
    files, and the old output is never lost (in place, or kept in replaced/)."""
    spec(
        tmp_path,
        "tasks:\n  t: {spec: {command: 'cat /proc/sys/kernel/random/uuid > $ALAMODE_OUTPUT/f'}}\n",
    )
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    old = alamode("cat", "p.yaml", "t", cwd=tmp_path).stdout
    ready = tmp_path / "paused"
    env = {"ALAMODE_FAULT_PAUSE": step, "ALAMODE_FAULT_READY": str(ready)}
    runner = start(tmp_path, "run", "p.yaml", "--force", "t", env=env)
    wait_for(ready)
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    rerun = alamode("run", "p.yaml", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    verified = alamode("verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert labels(tmp_path)["t"]["label"] == "done"
    now = alamode("cat", "p.yaml", "t", cwd=tmp_path).stdout
    kept = [path.read_text() for path in (tmp_path / ".alamode").glob("replaced/*/f")]
    assert now == old or old in kept  # the old output is never lost
    assert alamode("run", "p.yaml", cwd=tmp_path).stderr.startswith("1 task: 1 already done")
