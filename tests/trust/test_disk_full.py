"""A full disk: a clean failure of the attempt, one line naming the store and its free
space, and every read command still works. Each test mounts a 512 KB tmpfs (root only)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import alamode, missing_service
from ..test_cli_run import spec


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        missing_service("not root", "mounting a small tmpfs needs root")
    where = tmp_path / "tiny"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", where], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=True)


def test_a_log_that_fills_the_disk_fails_the_attempt_cleanly(tiny: Path) -> None:
    spec(tiny, "tasks:\n  big: {spec: {command: 'head -c 700000 /dev/zero | tr \"\\\\0\" x'}}\n")
    result = alamode("run", "p.yaml", cwd=tiny)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "FAILED  big" in result.stdout
    assert "could not write its log in " in result.stdout
    assert "No space left on device" in result.stdout
    assert re.search(r"\d[\d.]* (bytes|KB|MB|GB) free there", result.stdout)
    (row,) = json.loads(alamode("status", "p.yaml", "--json", cwd=tiny).stdout)
    assert row["label"] == "failed last time" and "could not write its log" in row["reason"]
    (attempt,) = json.loads(alamode("history", "--json", cwd=tiny).stdout)
    assert attempt["status"] == "failed"  # the run was closed: nothing left "running"


def test_a_store_that_cannot_record_is_one_line_and_still_readable(tiny: Path) -> None:
    spec(
        tiny,
        "tasks:\n  fill: {spec: {command: "
        '\'cat /dev/zero > "$PWD/filler" 2>/dev/null; echo small > "$ALAMODE_OUTPUT/f"\'}}\n',
    )
    result = alamode("run", "p.yaml", cwd=tiny)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "error: store .alamode: database or disk is full (0 bytes free)"
    )
    status = alamode("status", "p.yaml", "--json", cwd=tiny)
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert json.loads(status.stdout)[0]["label"] != "done"  # nothing false was recorded
    assert alamode("history", cwd=tiny).returncode == 0
    (tiny / "filler").unlink()  # room again: the next run settles the last and redoes it
    spec(tiny, "tasks:\n  fill: {spec: {command: 'echo small > \"$ALAMODE_OUTPUT/f\"'}}\n")
    assert alamode("run", "p.yaml", cwd=tiny).returncode == 0
    attempts = json.loads(alamode("history", "--json", cwd=tiny).stdout)
    assert "running" not in {attempt["status"] for attempt in attempts}
