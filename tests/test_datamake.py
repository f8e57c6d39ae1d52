"""datamake flows, loaded as they are: examples/diamond.json and examples/date.json."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, alamode
from .test_cli import assert_one_line_error

DIAMOND = str(ROOT / "examples" / "diamond.json")
DATE = str(ROOT / "examples" / "date.json")


@pytest.fixture
def user() -> Iterator[str]:
    """A user name of this test's own, and its artifact removed afterwards."""
    name = f"u{os.getpid()}"
    yield name
    Path(f"/tmp/alamode-diamond-example-{name}.json").unlink(missing_ok=True)


def events(result: object) -> list[dict[str, object]]:
    stdout: str = result.stdout  # type: ignore[attr-defined]
    return [json.loads(line) for line in stdout.splitlines()]


def test_the_diamond_runs_its_target_and_cleans_its_artifact_up(tmp_path: Path, user: str) -> None:
    artifact = Path(f"/tmp/alamode-diamond-example-{user}.json")
    run = alamode(
        "run", DIAMOND, "--target", "examples.grep-name", "--param", f"username={user}",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    done = [e["task"] for e in events(run) if e["event"] == "succeed"]
    assert done == ["examples.download", "examples.grep-name"]  # the target's closure only
    name = alamode("cat", DIAMOND, "examples.grep-name", "-p", f"username={user}", cwd=tmp_path)
    assert name.stdout == f'"name": "User {user}"\n'
    # everything downstream of download in that run succeeded: its artifact is gone
    assert not artifact.exists()
    full = alamode("run", DIAMOND, "-p", f"username={user}", "--json", cwd=tmp_path)
    ran = sorted(e["task"] for e in events(full) if e["event"] == "succeed")
    assert ran == ["examples.download", "examples.grep-email", "examples.user-details"]
    (cleaned,) = [e for e in events(full) if e["event"] == "cleanup"]
    assert cleaned["task"] == "examples.download" and not artifact.exists()
    status = alamode("status", DIAMOND, "-p", f"username={user}", "--json", cwd=tmp_path)
    reasons = {row["task"]: row["reason"] for row in json.loads(status.stdout)}
    assert reasons["examples.download"] == f"its artifact {artifact} is gone; it will run again"


def test_an_existing_artifact_means_done(tmp_path: Path, user: str) -> None:
    artifact = Path(f"/tmp/alamode-diamond-example-{user}.json")
    artifact.write_text('{"name": "Made Elsewhere", "email": "x@example.com"}\n')
    status = alamode("status", DIAMOND, "-p", f"username={user}", "--json", cwd=tmp_path)
    rows = {row["task"]: row for row in json.loads(status.stdout)}
    assert rows["examples.download"]["label"] == "done"
    assert rows["examples.download"]["reason"] == f"artifact exists: {artifact}"
    run = alamode("run", DIAMOND, "-p", f"username={user}", "--json", cwd=tmp_path)
    assert "examples.download" not in [e.get("task") for e in events(run) if e["event"] == "start"]
    got = alamode("cat", DIAMOND, "examples.grep-name", "-p", f"username={user}", cwd=tmp_path)
    assert got.stdout == '"name": "Made Elsewhere"\n'


def test_the_date_example_over_days(tmp_path: Path) -> None:
    days = ["--eval-param", "date=days_range(-2, 0)", "--today", "1999-01-03"]
    try:
        first = alamode("run", DATE, *days, "--json", cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert sorted(e["task"] for e in events(first) if e["event"] == "succeed") == [
            "examples.main[date=1999-01-01]",
            "examples.main[date=1999-01-02]",
            "examples.main[date=1999-01-03]",
        ]
        assert Path("/tmp/alamode-date-example-1999-01-02.txt").read_text() == (
            "smiles on 1999-01-02\n"
        )
        later = ["--eval-param", "date=days_range(-2, 0)", "--today", "1999-01-04"]
        second = alamode("run", DATE, *later, "--json", cwd=tmp_path)
        assert [e["task"] for e in events(second) if e["event"] == "succeed"] == [
            "examples.main[date=1999-01-04]"
        ]
    finally:
        for day in range(1, 5):
            Path(f"/tmp/alamode-date-example-1999-01-0{day}.txt").unlink(missing_ok=True)


def test_a_bad_flow_is_one_line(tmp_path: Path) -> None:
    flow = tmp_path / "f.json"
    flow.write_text('{"tasks": [{"id": "a", "command": "true", "artifacts": "x"}]}')
    assert_one_line_error(
        alamode("show", str(flow), cwd=tmp_path), "task 'a': unknown field 'artifacts'"
    )
    flow.write_text('{"tasks": [{"id": "a", "command": "true", "cleanup": true}]}')
    assert_one_line_error(
        alamode("show", str(flow), cwd=tmp_path), "cleanup removes the task's artifact; give one"
    )
    flow.write_text('{"tasks": [{"id": "a", "dependencies": ["b"]}]}')
    assert_one_line_error(alamode("show", str(flow), cwd=tmp_path), "unknown task 'b'")
