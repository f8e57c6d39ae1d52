"""The permission-based protections, exercised without privileges.

CI runs as root, which may write to read-only files and so would hide a missing protection.
These tests run ``alamode`` (and the commands it starts) with every capability dropped
(``setpriv --bounding-set=-all``): the same uid, but no override of file permissions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..test_cli_run import spec

UNPRIVILEGED = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]


def unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    prefix = UNPRIVILEGED if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    return subprocess.run(
        [*prefix, sys.executable, "-c", "from a_la_mode.cli.main import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_published_outputs_cannot_be_changed_by_a_later_task(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  up: {spec: {command: 'echo up > "$ALAMODE_OUTPUT/f"'}}
  down:
    deps: [up]
    spec: {command: 'echo tampered >> "$ALAMODE_INPUT_UP/f"; echo down > "$ALAMODE_OUTPUT/g"'}
""",
    )
    result = unprivileged("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = unprivileged("log", "down", cwd=tmp_path).stdout
    assert "Permission denied" in log  # the task's write into its input was refused
    rows = json.loads(unprivileged("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    up = next(row["output"] for row in rows if row["task"] == "up")
    assert (tmp_path / ".alamode" / "outputs" / up / "f").read_text() == "up\n"
    assert unprivileged("verify", cwd=tmp_path).returncode == 0


def test_hard_links_and_gc_without_privileges(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    spec(
        tmp_path,
        """
tasks:
  a: {spec: {command: 'ln "$PWD/outside.txt" "$ALAMODE_OUTPUT/linked"'}}
""",
    )
    result = unprivileged("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outside.write_text("still mine to change\n")  # publishing left it writable
    spec(tmp_path, "tasks:\n  b: {spec: {command: 'true'}}\n")
    unprivileged("run", "p.yaml", cwd=tmp_path)
    removed = unprivileged("gc", "--keep", "1", "--yes", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert outside.read_text() == "still mine to change\n"
    assert len(list((tmp_path / ".alamode" / "outputs").iterdir())) == 1  # b's only
