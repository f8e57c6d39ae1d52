"""Reading a store never waits for a writer, and never trusts a plan file that was
swapped behind its digest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..conftest import alamode
from ..test_cli_run import spec, start, wait_for

HOLD_THE_WRITE_LOCK = """
import sqlite3, sys, time
from pathlib import Path
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE runs SET status=status")
Path(sys.argv[2]).touch()
time.sleep(60)
"""


def test_read_only_commands_do_not_wait_behind_a_writer(tmp_path: Path) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'echo a > $ALAMODE_OUTPUT/f'}}\n")
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    holding = tmp_path / "holding"
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WRITE_LOCK, str(tmp_path / ".alamode" / "state.sqlite"),
         str(holding)],
    )  # fmt: skip
    try:
        wait_for(holding)
        for command in (["status", "p.yaml"], ["history"], ["verify"], ["explain", "p.yaml", "a"]):
            began = time.monotonic()
            result = alamode(*command, cwd=tmp_path)
            assert result.returncode == 0, (command, result.stderr)
            assert time.monotonic() - began < 20, command  # the writer holds on for 60 s
    finally:
        writer.kill()
        writer.wait()


def test_a_plan_file_swapped_behind_its_digest_is_refused(tmp_path: Path) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'echo a > $ALAMODE_OUTPUT/f'}}\n")
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'echo evil > $ALAMODE_OUTPUT/f'}}\n", "q.yaml")
    assert alamode("run", "p.yaml", "--store", "s", cwd=tmp_path).returncode == 0
    assert alamode("encode", "q.yaml", "-o", "evil.bencode", cwd=tmp_path).returncode == 0
    [kept] = list((tmp_path / "s" / "plans").iterdir())
    kept.chmod(0o644)
    shutil.copyfile(tmp_path / "evil.bencode", kept)
    for command in ("run", "status", "explain"):
        more = ["a"] if command == "explain" else []
        result = alamode(
            command, str(kept.relative_to(tmp_path)), *more, "--store", "s", cwd=tmp_path
        )
        assert result.returncode == 2, result.stdout
        assert "as its name says; it was replaced" in result.stderr
    assert alamode("cat", "p.yaml", "a", "--store", "s", cwd=tmp_path).stdout == "a\n"


def test_status_during_a_run_says_what_is_running(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  slow: {spec: {command: 'touch "$PWD/started"; while [ ! -f "$PWD/go" ]; do sleep 0.05; done; touch $ALAMODE_OUTPUT/f'}}
  after: {deps: [slow], spec: {command: 'touch $ALAMODE_OUTPUT/f'}}
""",  # noqa: E501
    )
    runner = start(tmp_path, "run", "p.yaml")
    try:
        wait_for(tmp_path / "started")
        rows = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
        states = {row["task"]: row for row in rows}
        assert states["slow"]["label"] == "running"
        assert states["slow"]["reason"] == f"being produced by run 1 (pid {runner.pid})"
        assert states["after"]["label"] == "blocked"
        table = alamode("status", "p.yaml", cwd=tmp_path)
        assert table.returncode == 0 and "running" in table.stdout
    finally:
        (tmp_path / "go").touch()
        runner.communicate(timeout=60)
    assert {
        row["label"]
        for row in json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    } == {"done"}
