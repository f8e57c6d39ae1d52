"""What a new user meets on day one: results they can find, failures they can read, reruns
they can force, and bad input that writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import alamode
from .test_cli_run import spec

PIPE = """
tasks:
  fetch: {spec: {command: 'seq 1 3 > "$ALAMODE_OUTPUT/n.txt"'}}
  merge:
    deps: [fetch]
    spec:
      command: >-
        cat "$ALAMODE_INPUT_FETCH/n.txt" > "$ALAMODE_OUTPUT/all.txt";
        date +%s%N > "$ALAMODE_OUTPUT/when"
"""
BROKEN = """
tasks:
  bad: {spec: {command: 'for i in $(seq 1 30); do echo "line $i"; done; exit 4'}}
  after: {deps: [bad], spec: {command: 'true'}}
"""


def test_a_bad_target_writes_nothing(tmp_path: Path) -> None:
    spec(tmp_path, PIPE)
    result = alamode("run", "p.yaml", "--target", "merg", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr == "error: p.yaml: unknown target 'merg', did you mean 'merge'?; "
        "'alamode show' lists the tasks\n"
    )
    assert not (tmp_path / ".alamode").exists()


def test_where_is_my_result(tmp_path: Path) -> None:
    spec(tmp_path, PIPE)
    missing = alamode("path", "p.yaml", "merge", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.endswith(
        "error: task 'merge' has no output for this plan yet (blocked: upstream fetch will run)"
        "; 'alamode run' makes it\n"
    )
    assert not (tmp_path / ".alamode").exists()  # asking makes no store
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    where = alamode("path", "p.yaml", "fetch", cwd=tmp_path)
    assert where.returncode == 0
    folder = Path(where.stdout.strip())
    assert folder.is_absolute() and (folder / "n.txt").read_text() == "1\n2\n3\n"
    assert alamode("cat", "p.yaml", "fetch", cwd=tmp_path).stdout == "1\n2\n3\n"
    assert alamode("cat", "p.yaml", "merge", "all.txt", cwd=tmp_path).stdout == "1\n2\n3\n"
    several = alamode("cat", "p.yaml", "merge", cwd=tmp_path)
    assert several.returncode == 2
    assert "task 'merge' has 2 files; name one: all.txt, when" in several.stderr
    typo = alamode("cat", "p.yaml", "merge", "al.txt", cwd=tmp_path)
    assert "no file 'al.txt', did you mean 'all.txt'?" in typo.stderr


def test_where_is_my_result_on_a_blob_store(tmp_path: Path) -> None:
    spec(tmp_path, PIPE)
    bucket = ["-s", f"file://{tmp_path}/bucket"]
    assert (
        alamode("run", "p.yaml", *bucket, cwd=tmp_path, env=_cache(tmp_path, "a")).returncode == 0
    )
    elsewhere = alamode("cat", "p.yaml", "fetch", *bucket, cwd=tmp_path, env=_cache(tmp_path, "b"))
    assert elsewhere.returncode == 0 and elsewhere.stdout == "1\n2\n3\n"  # fetched first


def _cache(tmp_path: Path, name: str) -> dict[str, str]:
    return {"ALAMODE_CACHE": str(tmp_path / f"cache-{name}")}


def test_a_failure_shows_the_end_of_its_log(tmp_path: Path) -> None:
    spec(tmp_path, BROKEN)
    result = alamode("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("FAILED  bad"))
    assert "log: " in lines[at]
    assert lines[at + 1 : at + 11] == [f"        │ line {i}" for i in range(21, 31)]
    status = {
        r["task"]: r for r in json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    }
    assert status["after"]["reason"] == "upstream bad failed last time"


def test_quiet_says_nothing_on_success_and_the_summary_on_failure(tmp_path: Path) -> None:
    spec(tmp_path, PIPE)
    ok = alamode("run", "p.yaml", "-q", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    spec(tmp_path, BROKEN, "b.yaml")
    failed = alamode("run", "b.yaml", "-q", cwd=tmp_path)
    assert failed.returncode == 1
    assert "FAILED  bad" in failed.stdout and "line 30" in failed.stdout
    assert failed.stderr.startswith("2 tasks: 0 already done, 0 succeeded, 1 failed, 1 blocked")


def test_force_runs_a_task_again_and_keeps_the_old_output_aside(tmp_path: Path) -> None:
    spec(tmp_path, PIPE)
    alamode("run", "p.yaml", cwd=tmp_path)
    first = alamode("cat", "p.yaml", "merge", "when", cwd=tmp_path).stdout
    again = alamode("run", "p.yaml", "--force", "merge", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 tasks: 1 already done, 1 succeeded" in again.stderr
    second = alamode("cat", "p.yaml", "merge", "when", cwd=tmp_path).stdout
    assert second != first  # made again, not skipped
    (aside,) = (tmp_path / ".alamode" / "replaced").iterdir()
    assert (aside / "when").read_text() == first  # the old output, kept until gc
    assert alamode("verify", cwd=tmp_path).returncode == 0  # the new record fits the new files
    history = json.loads(alamode("history", "merge", "--json", cwd=tmp_path).stdout)
    assert [row["status"] for row in history] == ["succeeded", "succeeded"]
    downstream = alamode("run", "p.yaml", "--force", "fetch", "--force-downstream", cwd=tmp_path)
    assert "2 tasks: 0 already done, 2 succeeded" in downstream.stderr
    alone = alamode("run", "p.yaml", "--force", "fetch", cwd=tmp_path)
    assert "2 tasks: 1 already done, 1 succeeded" in alone.stderr  # same ID: merge stays done
    assert alamode("gc", "--yes", cwd=tmp_path).returncode == 0
    assert list((tmp_path / ".alamode" / "replaced").iterdir()) == []
    typo = alamode("run", "p.yaml", "--force", "merg", cwd=tmp_path)
    assert (
        typo.returncode == 2
        and "--force: unknown task 'merg', did you mean 'merge'?" in typo.stderr
    )


def test_force_on_a_blob_store(tmp_path: Path) -> None:
    spec(tmp_path, PIPE)
    bucket = ["-s", f"file://{tmp_path}/bucket"]
    env = _cache(tmp_path, "a")
    alamode("run", "p.yaml", *bucket, cwd=tmp_path, env=env)
    first = alamode("cat", "p.yaml", "merge", "when", *bucket, cwd=tmp_path, env=env).stdout
    again = alamode("run", "p.yaml", "--force", "merge", *bucket, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    other = _cache(tmp_path, "b")  # another machine sees the new result
    second = alamode("cat", "p.yaml", "merge", "when", *bucket, cwd=tmp_path, env=other).stdout
    assert second and second != first
    assert alamode("verify", *bucket, cwd=tmp_path, env=other).returncode == 0


def test_gc_names_what_it_removes(tmp_path: Path) -> None:
    spec(tmp_path, PIPE)
    alamode("run", "p.yaml", cwd=tmp_path)
    nothing = alamode("gc", cwd=tmp_path)
    assert nothing.stdout == ""
    assert nothing.stderr.startswith("nothing to remove; kept everything used by the 1 kept plan")
    spec(tmp_path, PIPE.replace("seq 1 3", "seq 1 4"))
    alamode("run", "p.yaml", cwd=tmp_path)
    dry = alamode("gc", "--keep", "1", cwd=tmp_path)
    rows = dry.stdout.splitlines()
    assert sorted(row.split()[:3] for row in rows) == [
        ["would", "remove", "fetch"],
        ["would", "remove", "merge"],
    ]
    assert all(row.endswith("bytes") for row in rows)


def test_day_one_messages(tmp_path: Path) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'true', timeout: 2.5}}\n")
    timeout = alamode("validate", "p.yaml", cwd=tmp_path)
    assert timeout.stderr == (
        "error: p.yaml: tasks.a.spec.timeout is a float (2.5); timeout takes whole seconds: "
        "write 2 or 3\n"
    )
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'true', timeout: '2'}}\n")
    late = alamode("run", "p.yaml", cwd=tmp_path)
    assert late.stderr == (
        "error: p.yaml: task 'a': spec key 'timeout' must be an integer of at least 1\n"
    )
    assert not (tmp_path / ".alamode").exists()
    spec(tmp_path, "tasks:\n  bb: {deps: [b], spec: {command: 'true'}}\n")
    cycle = alamode("validate", "p.yaml", cwd=tmp_path)
    assert "did you mean 'bb'" not in cycle.stderr
    assert "depends on unknown task 'b'; define it or remove the dependency" in cycle.stderr
    spec(tmp_path, "tasks:\n  a: {}\n  b: {dep: [a]}\n")
    typo = alamode("validate", "p.yaml", cwd=tmp_path)
    assert "tasks.b.dep: unknown field; did you mean 'deps'?" in typo.stderr
    spec(tmp_path, PIPE)
    explain = alamode("explain", "p.yaml", "merg", cwd=tmp_path)
    assert explain.stderr == (
        "error: unknown task 'merg', did you mean 'merge'?; 'alamode show' lists them\n"
    )
    alamode("run", "p.yaml", cwd=tmp_path)
    if os.geteuid() == 0:  # root can write into read-only outputs; anyone else cannot
        status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
        folder = tmp_path / ".alamode" / "outputs" / status[0]["output"]
        (folder / "n.txt").write_text("changed\n")
        verified = alamode("verify", cwd=tmp_path)
        assert "1 bad output: their success records were dropped" in verified.stderr
