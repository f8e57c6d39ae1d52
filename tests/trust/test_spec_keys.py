"""A misspelled engine key is refused at compile time, never run as a join point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import alamode
from ..test_cli_run import spec


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("comand", "command"),
        ("cmd", "command"),
        ("Command", "command"),
        ("timout", "timeout"),
        ("retires", "retries"),
        ("max_retries", "retries"),
        ("commands", "command"),  # mara's list: refused like a typo, never a join point
        ("fuction", "function"),
    ],
)
def test_a_near_miss_of_an_engine_key_is_refused(tmp_path: Path, key: str, meant: str) -> None:
    spec(tmp_path, f"tasks:\n  a: {{spec: {{{key}: 'echo hi > $ALAMODE_OUTPUT/f'}}}}\n")
    for command in ("validate", "show", "run", "encode"):
        result = alamode(command, "p.yaml", cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout)
        [line] = result.stderr.splitlines()
        assert f"task 'a': spec key {key!r}" in line and f"did you mean {meant!r}?" in line
    assert not (tmp_path / ".alamode").exists()  # nothing written, nothing recorded


def test_free_keys_stay_free_and_join_points_are_named(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  a:
    spec:
      {sha: 1qe34, owner: data-team, node: x, comment: nightly, images: [a],
       command: 'echo a > $ALAMODE_OUTPUT/f'}
  b: {deps: [a], spec: {sha: 6f09d}}
""",
    )
    checked = alamode("validate", "p.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "join points (no command or function, they run nothing): b" in checked.stderr
    as_json = json.loads(alamode("validate", "p.yaml", "--json", cwd=tmp_path).stdout)
    assert as_json[0]["join_points"] == ["b"]
    shown = alamode("show", "p.yaml", cwd=tmp_path).stdout
    assert "(join point)" in shown.splitlines()[-1]


def test_the_python_dsl_refuses_it_too(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(
        "from a_la_mode import Dag\ndag = Dag()\ndag.task('a', {'timout': 5, 'command': 'true'})\n"
    )
    result = alamode("validate", "p.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "spec key 'timout' is not one engines know, did you mean 'timeout'?" in result.stderr


def test_dependencies_written_inside_a_spec_are_refused(tmp_path: Path) -> None:
    spec(
        tmp_path,
        "tasks:\n  a: {spec: {command: 'true', deps: [b]}}\n  b: {spec: {command: 'true'}}\n",
    )
    result = alamode("validate", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "spec key 'deps' looks like the task's dependencies, which go beside its spec" in (
        result.stderr
    )
