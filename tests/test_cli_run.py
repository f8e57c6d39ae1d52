"""``alamode run`` and the store commands, as real processes; faults produced for real."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from a_la_mode import load_plan
from a_la_mode.store.directory import LocalStore

from .conftest import alamode

ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]


def spec(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    (tmp_path / name).write_text(text)
    return name


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ALAMODE, *args],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


DIAMOND = """
tasks:
  a: {spec: {command: 'echo a > "$ALAMODE_OUTPUT/a"'}}
  b: {deps: [a], spec: {command: 'cat "$ALAMODE_INPUT_A/a" > "$ALAMODE_OUTPUT/b"'}}
  c: {deps: [a], spec: {command: 'echo broken >&2; exit 4'}}
  d: {deps: [b, c]}
"""


def test_run_reports_each_event_and_exits_1_on_failure(tmp_path: Path) -> None:
    result = alamode("run", spec(tmp_path, DIAMOND), "-j", "1", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "FAILED  c" in result.stdout and "exited with status 4" in result.stdout
    assert "4 tasks: 0 already done, 2 succeeded, 1 failed, 1 blocked" in result.stderr
    assert "failed: c ('alamode log TASK' shows why)" in result.stderr


def test_json_events_one_per_line(tmp_path: Path) -> None:
    result = alamode("run", spec(tmp_path, DIAMOND), "--json", "-k", cwd=tmp_path)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {e["event"] for e in events} >= {"start", "succeed", "fail", "finish"}
    fail = next(e for e in events if e["event"] == "fail")
    assert fail["task"] == "c" and fail["detail"] == "exited with status 4"
    assert events[-1] == {**events[-1], "event": "finish", "detail": "failed"}


def test_tasks_done_before_say_which_success_they_stand_on(tmp_path: Path) -> None:
    alamode("run", spec(tmp_path, DIAMOND), "--target", "b", cwd=tmp_path)
    again = alamode("run", "p.yaml", "--json", "-t", "b", cwd=tmp_path)
    skips = {
        e["task"]: e for e in map(json.loads, again.stdout.splitlines()) if e["event"] == "skip"
    }
    assert sorted(skips) == ["a", "b"]
    for event in skips.values():
        assert event["detail"] == f"success recorded for {event['output'][:12]}…"
    status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    done = {row["task"]: row for row in status if row["label"] == "done"}
    assert done["a"]["reason"] == "success recorded by run 1"  # its ID has a column of its own


def test_target_runs_only_the_upstream_closure(tmp_path: Path) -> None:
    result = alamode("run", spec(tmp_path, DIAMOND), "--target", "b", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 tasks: 0 already done, 2 succeeded" in result.stderr
    bad = alamode("run", "p.yaml", "--target", "bb", cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown target 'bb', did you mean 'b'?" in bad.stderr


def test_dry_run_lists_what_would_run_and_runs_nothing(tmp_path: Path) -> None:
    alamode("run", spec(tmp_path, DIAMOND), "--target", "b", cwd=tmp_path)
    result = alamode("run", "p.yaml", "--dry-run", cwd=tmp_path)
    assert [line.split()[2] for line in result.stdout.splitlines()] == ["c", "d"]
    assert "2 would run, 2 already done" in result.stderr
    assert len(LocalStore(tmp_path / ".alamode").ledger.runs(10)) == 1


def test_status_explain_history_log_provenance(tmp_path: Path) -> None:
    alamode("run", spec(tmp_path, DIAMOND), "-k", cwd=tmp_path)
    status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    labels = {row["task"]: row["label"] for row in status}
    assert labels == {"a": "done", "b": "done", "c": "failed last time", "d": "blocked"}
    assert alamode("explain", "p.yaml", "d", cwd=tmp_path).stdout.startswith(
        "d: blocked: upstream c failed last time"
    )
    history = json.loads(alamode("history", "c", "--json", cwd=tmp_path).stdout)
    typo = alamode("history", "cc", cwd=tmp_path)
    assert typo.returncode == 0 and typo.stdout == ""
    assert "no attempts of 'cc' in .alamode, did you mean 'c'?" in typo.stderr
    assert json.loads(alamode("history", "cc", "--json", cwd=tmp_path).stdout) == []
    assert history[0]["exit_code"] == 4 and history[0]["timed_out"] is False
    succeeded = json.loads(alamode("history", "a", "--json", cwd=tmp_path).stdout)[0]
    assert succeeded["status"] == "succeeded" and succeeded["exit_code"] == 0
    table = alamode("history", "a", cwd=tmp_path).stdout.splitlines()
    row = next(line for line in table if "succeeded" in line)
    assert row.split("│")[6].strip() == "0", table  # the exit column: 0, not "-"
    shown = json.loads(alamode("show", "p.yaml", "--json", cwd=tmp_path).stdout)
    never = alamode("log", shown["tasks"]["d"]["output"], cwd=tmp_path)  # blocked: no attempt
    assert never.returncode == 2 and never.stderr.count("\n") == 1, never.stderr
    assert "error: no attempts of " in never.stderr and "Traceback" not in never.stderr
    (tmp_path / "p.yaml").write_text(
        DIAMOND.replace("echo broken >&2; exit 4", "echo fixed; touch $ALAMODE_OUTPUT/c")
    )
    explained = alamode("explain", "p.yaml", "c", cwd=tmp_path).stdout
    assert "last attempt: exited with status 4 in run 1, for output" in explained
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    assert alamode("log", "c", cwd=tmp_path).stdout == "fixed\n"
    old_output = history[0]["output"]
    assert alamode("log", old_output[:10], cwd=tmp_path).stdout == "broken\n"
    assert alamode("log", "c", "--attempt", "1", cwd=tmp_path).stdout == "fixed\n"
    missing = alamode("log", "c", "--attempt", "7", cwd=tmp_path)
    assert missing.returncode == 2 and "has attempts 1..1, not 7" in missing.stderr
    silent = alamode("log", "b", cwd=tmp_path)  # b wrote its output, and printed nothing
    assert (silent.returncode, silent.stdout) == (0, "")
    assert silent.stderr.strip() == "attempt 1 of b printed nothing"
    tree = json.loads(alamode("provenance", "d", "--json", cwd=tmp_path).stdout)
    assert tree["task"] == "d"
    assert sorted(child["name"] for child in tree["inputs"]) == ["b", "c"]
    assert tree["inputs"][0]["inputs"][0]["spec"] == {"command": 'echo a > "$ALAMODE_OUTPUT/a"'}


def test_log_follow_prints_a_running_attempt_until_it_ends(tmp_path: Path) -> None:
    slow = """
tasks:
  slow: {spec: {command: 'echo one; sleep 0.5; echo two; sleep 0.5; echo "three ü"'}}
"""
    runner = start(tmp_path, "run", spec(tmp_path, slow))
    wait_for(tmp_path / ".alamode" / "logs")  # the attempt has printed "one"
    followed = alamode("log", "slow", "--follow", cwd=tmp_path)
    _, errors = runner.communicate(timeout=60)
    assert runner.returncode == 0, errors
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "one\ntwo\nthree ü\n"  # all of it, though it began after "one"
    done = alamode("log", "slow", "-f", cwd=tmp_path)  # an attempt that has ended: at once
    assert done.stdout == followed.stdout
    (tmp_path / "p.yaml").write_text("tasks:\n  slow: {spec: {command: 'true'}}\n")
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0  # it prints nothing
    silent = alamode("log", "slow", "-f", cwd=tmp_path)
    assert (silent.returncode, silent.stdout) == (0, "")
    assert silent.stderr.strip() == "attempt 1 of slow printed nothing"


def test_tables_and_trees_on_a_pipe_keep_each_row_on_one_line(tmp_path: Path) -> None:
    """grep and awk see one row per task: rich wrapped and cut tables and trees at 80
    columns when stdout was not a terminal (a long reason on two lines, a spec cut short)."""
    long_name = "a-task-whose-name-alone-takes-up-most-of-an-eighty-column-line"
    command = f"echo {'x' * 90} > $ALAMODE_OUTPUT/out"
    text = f"tasks:\n  {long_name}:\n    spec: {{command: '{command}'}}\n"
    alamode("run", spec(tmp_path, text), cwd=tmp_path)

    def piped(*args: str, columns: str | None = None) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        env.update({"COLUMNS": columns} if columns else {})
        done = subprocess.run(
            [*ALAMODE, *args], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        return done.stdout.splitlines()

    row = next(line for line in piped("status", "p.yaml") if long_name in line)
    assert row.split("│")[0].strip() == "done" and row.rstrip().endswith("by run 1"), row
    assert any(long_name in line and "succeeded" in line for line in piped("history"))
    assert any(command in line for line in piped("provenance", long_name))
    narrow = piped("status", "p.yaml", columns="60")
    assert max(len(line) for line in narrow) <= 60  # $COLUMNS still sets the width


def on_a_terminal(cwd: Path, *args: str, stdout_too: bool = False) -> str:
    """What ``alamode ARGS`` shows on a real pseudo-terminal as its stderr (and stdout)."""
    import pty

    leader, follower = pty.openpty()
    done = subprocess.run(
        [*ALAMODE, *args],
        cwd=cwd,
        stdout=follower if stdout_too else subprocess.PIPE,
        stderr=follower,
        timeout=60,
    )
    os.close(follower)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the pty is drained
        while chunk := os.read(leader, 65536):
            seen += chunk
    os.close(leader)
    assert done.returncode == 0, seen
    return seen.decode(errors="replace")


def test_verify_and_gc_show_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """Long store work shows a bar on stderr when it is a terminal (a real pseudo-terminal
    here), and nothing on a pipe, where the result lines are all a script gets."""
    alamode("run", spec(tmp_path, DIAMOND.replace("exit 4", "true")), cwd=tmp_path)
    assert "verifying outputs" in on_a_terminal(tmp_path, "verify")
    assert "4/4" in on_a_terminal(tmp_path, "verify")
    piped = alamode("verify", cwd=tmp_path)
    assert piped.stderr == "every recorded output matches its manifest\n"
    (tmp_path / "p.yaml").write_text(DIAMOND.replace("exit 4", "true").replace("echo a", "echo A"))
    alamode("run", "p.yaml", cwd=tmp_path)
    assert "removing outputs" in on_a_terminal(tmp_path, "gc", "--keep", "1", "--yes")


def test_a_run_on_a_terminal_shows_its_progress_live(tmp_path: Path) -> None:
    slow = DIAMOND.replace("exit 4", "sleep 1.5").replace("d: {deps: [b, c]}", "")
    alamode("run", spec(tmp_path, slow), "-t", "b", cwd=tmp_path)
    shown = on_a_terminal(tmp_path, "run", "p.yaml", stdout_too=True)
    # the bar, its counts and the task running now with its time, while c runs; then all
    assert re.search(r"alamode run.*2/3.* 2 skipped .*\n.*c.*  [01]\.\d s", shown), shown
    assert "3/3" in shown and "2 skipped, 1 succeeded" in shown
    assert "3 tasks: 2 already done, 1 succeeded" in shown


def test_explain_says_what_changed_since_the_last_success(tmp_path: Path) -> None:
    alamode("run", spec(tmp_path, DIAMOND.replace("exit 4", "true")), cwd=tmp_path)
    (tmp_path / "p.yaml").write_text(DIAMOND.replace("exit 4", "true").replace("echo a", "echo A"))
    explained = alamode("explain", "p.yaml", "b", cwd=tmp_path).stdout
    assert "since then it changed because of upstream a → b" in explained


def test_gc_is_a_dry_run_until_yes(tmp_path: Path) -> None:
    first = DIAMOND.replace("exit 4", "true")
    alamode("run", spec(tmp_path, first), cwd=tmp_path)
    old = json.loads(alamode("show", "p.yaml", "--json", cwd=tmp_path).stdout)["tasks"]
    (tmp_path / "p.yaml").write_text(first.replace("cat ", "cat -- "))  # b changes, so does d
    alamode("run", "p.yaml", cwd=tmp_path)
    store = LocalStore(tmp_path / ".alamode")
    before = set(store.outputs.stored_outputs())
    dry = json.loads(alamode("gc", "--keep", "1", "--json", cwd=tmp_path).stdout)
    assert sorted(dry["would_remove"]) == sorted([old["b"]["output"], old["d"]["output"]])
    assert set(store.outputs.stored_outputs()) == before
    future = json.loads(alamode("gc", "--since", "2999-01-01", "--json", cwd=tmp_path).stdout)
    assert len(future["would_remove"]) == 6 and future["kept_plans"] == []  # nothing is newer
    past = json.loads(alamode("gc", "--since", "2000-01-01", "--json", cwd=tmp_path).stdout)
    assert past["would_remove"] == []  # both plans ran since then
    said = alamode("gc", "--keep", "1", cwd=tmp_path).stderr
    assert "2 outputs (2 bytes) would be removed; run again with --yes to remove them" in said
    kept = json.loads(alamode("show", "p.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    assert f"kept everything used by the 1 kept plan ({kept[:12]})\n" in said
    bad = alamode("gc", "--since", "last tuesday", cwd=tmp_path)
    assert bad.returncode == 2 and "is not a date; write it like 2026-11-01" in bad.stderr
    done = json.loads(alamode("gc", "--keep", "1", "--yes", "--json", cwd=tmp_path).stdout)
    assert set(store.outputs.stored_outputs()) == before - set(done["removed"])
    assert alamode("status", "p.yaml", cwd=tmp_path).stdout.count("done") == 4


def test_verify_exit_status(tmp_path: Path) -> None:
    alamode("run", spec(tmp_path, DIAMOND.replace("exit 4", "true")), cwd=tmp_path)
    assert alamode("verify", cwd=tmp_path).returncode == 0
    plan = load_plan(
        tmp_path
        / ".alamode"
        / "plans"
        / next(p.name for p in (tmp_path / ".alamode" / "plans").iterdir())
    )
    target = tmp_path / ".alamode" / "outputs" / plan.output("a") / "a"
    target.chmod(0o644)
    target.write_text("b\n")  # same size, different content: only a re-hash sees it
    result = alamode("verify", cwd=tmp_path)
    assert result.returncode == 1 and "BAD  a" in result.stdout


def test_commands_that_only_read_make_no_store(tmp_path: Path) -> None:
    source = spec(tmp_path, DIAMOND)
    status = alamode("status", source, "--store", "nowhere", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert {row["label"] for row in json.loads(status.stdout)} == {"would run", "blocked"}
    assert "no store at nowhere yet: nothing has run there" in status.stderr
    dry = alamode("run", source, "--dry-run", "--store", "nowhere", cwd=tmp_path)
    assert dry.returncode == 0 and "4 would run, 0 already done" in dry.stderr
    for command in (["history"], ["verify"], ["gc"], ["log", "a"], ["provenance", "a"]):
        result = alamode(*command, "--store", "nowhere", cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: no store at nowhere: nothing has run there")
    assert not (tmp_path / "nowhere").exists()


def test_engines_lists_local() -> None:
    rows = json.loads(alamode("engines", "--json").stdout)
    local = next(row for row in rows if row["name"] == "local")
    assert local["target"] == "a_la_mode.engines.local:LocalEngine"
    assert local["state"] == "ok"
    lines = alamode("engines").stdout.splitlines()
    # columns as wide as their longest entry (docker's entry point is 34 characters)
    assert [line.split(maxsplit=2)[:2] for line in lines] == [
        [row["name"], row["target"]] for row in rows
    ]
    result = alamode("run", "x.yaml", "--engine", "locl")
    assert result.returncode == 2


SLOW = """
tasks:
  slow:
    spec:
      command: 'echo working; touch "$ALAMODE_OUTPUT/part"; echo $$ > task.pid; touch started;
        if [ -f slow ]; then sleep 60; fi; echo done > "$ALAMODE_OUTPUT/result"'
  after: {deps: [slow], spec: {command: 'cat "$ALAMODE_INPUT_SLOW/result" > "$ALAMODE_OUTPUT/r"'}}
"""


def kill_task_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "task.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def test_sigkill_of_the_runner_mid_task_leaves_nothing_trusted(tmp_path: Path) -> None:
    (tmp_path / "slow").touch()
    runner = start(tmp_path, "run", spec(tmp_path, SLOW))
    wait_for(tmp_path / "started")
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    kill_task_group(tmp_path)
    store = LocalStore(tmp_path / ".alamode")
    assert store.outputs.recorded_outputs() == {} and store.outputs.stored_outputs() == []
    [attempt] = json.loads(alamode("history", "--json", cwd=tmp_path).stdout)
    assert (attempt["task"], attempt["status"]) == ("slow", "killed")  # not "running" forever
    status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    assert {"task": "slow", "label": "failed last time"}.items() <= status[0].items()
    assert status[0]["reason"].startswith("its runner was killed before it finished")
    (tmp_path / "slow").unlink()
    again = alamode("run", "p.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert list((tmp_path / ".alamode" / "staging").iterdir()) == []
    plan = load_plan(
        tmp_path
        / ".alamode"
        / "plans"
        / next(p.name for p in (tmp_path / ".alamode" / "plans").iterdir())
    )
    assert (store.outputs.output_path(plan.output("after")) / "r").read_text() == "done\n"
    assert [run["status"] for run in store.ledger.runs(5)] == ["succeeded", "killed"]


@pytest.mark.parametrize(("step", "rerun"), [("before-rename", True), ("before-record", False)])
def test_sigkill_at_each_step_of_publishing(tmp_path: Path, step: str, rerun: bool) -> None:
    ready = tmp_path / "paused"
    runner = start(
        tmp_path,
        "run",
        spec(tmp_path, SLOW),
        "--target",
        "slow",
        env={"ALAMODE_FAULT_PAUSE": step, "ALAMODE_FAULT_READY": str(ready)},
    )
    wait_for(ready)
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    store = LocalStore(tmp_path / ".alamode")
    assert store.outputs.recorded_outputs() == {}  # never a success that was not recorded in full
    result = alamode("run", "p.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    slow = [e["event"] for e in events if e.get("task") == "slow"]
    if rerun:  # files were staged but never published: run again
        assert slow == ["start", "succeed"]
    else:  # published whole (manifest checked) but not recorded: adopt, do not redo
        assert slow == ["adopt"]
    assert [p.name for p in (tmp_path / ".alamode" / "logs").iterdir()] != []  # "working"
    assert list((tmp_path / ".alamode" / "staging").iterdir()) == []
    assert alamode("verify", cwd=tmp_path).returncode == 0


def test_two_runners_on_one_store_run_each_task_once(tmp_path: Path) -> None:
    shared = "\n".join(
        f"  t{i}: {{deps: [{'t0' if i else ''}], spec: {{command: 'echo t{i} >> ran; "
        f"sleep 0.3; touch $ALAMODE_OUTPUT/x'}}}}".replace("deps: [], ", "")
        for i in range(6)
    )
    spec(
        tmp_path,
        "tasks:\n" + shared + "\n  only-one: {spec: {command: 'echo one >> "
        "ran; touch $ALAMODE_OUTPUT/x'}}\n",
        "one.yaml",
    )
    spec(
        tmp_path,
        "tasks:\n" + shared + "\n  only-two: {spec: {command: 'echo two >> "
        "ran; touch $ALAMODE_OUTPUT/x'}}\n",
        "two.yaml",
    )
    first = start(tmp_path, "run", "one.yaml", "-j", "2")
    second = start(tmp_path, "run", "two.yaml", "-j", "2")
    outs = [first.communicate(timeout=120), second.communicate(timeout=120)]
    assert first.returncode == 0 and second.returncode == 0, outs
    assert not any("locked" in err for _, err in outs)
    ran = (tmp_path / "ran").read_text().split()
    assert sorted(ran) == sorted([f"t{i}" for i in range(6)] + ["one", "two"])


def test_ctrl_c_stops_tasks_and_records_nothing(tmp_path: Path) -> None:
    (tmp_path / "slow").touch()
    runner = start(tmp_path, "run", spec(tmp_path, SLOW))
    wait_for(tmp_path / "started")
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 130
    assert "interrupted: running tasks were stopped and nothing half-done was recorded" in err
    assert "Traceback" not in err
    store = LocalStore(tmp_path / ".alamode")
    assert store.outputs.recorded_outputs() == {}
    assert store.ledger.history("slow", 1)[0]["status"] == "interrupted"
    task = int((tmp_path / "task.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = (
            Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if Path(f"/proc/{task}").exists()
            else "gone"
        )
        if state in ("gone", "Z", "X"):
            break
        time.sleep(0.05)
    assert state in ("gone", "Z", "X")


def test_diff_with_a_store_says_what_exists_and_what_is_left(tmp_path: Path) -> None:
    old = DIAMOND.replace("echo broken >&2; exit 4", "true")
    spec(tmp_path, old, "old.yaml")
    spec(tmp_path, old.replace("echo a", "echo A"), "new.yaml")
    alamode("run", "old.yaml", cwd=tmp_path)
    alamode("run", "new.yaml", "--target", "a", cwd=tmp_path)
    report = json.loads(
        alamode(
            "diff", "old.yaml", "new.yaml", "--store", ".alamode", "--json", cwd=tmp_path
        ).stdout
    )["store"]
    assert report["existing"] == ["a"]
    assert sorted(report["to_compute"]) == ["b", "c", "d"]
    assert report["without_recorded_time"] == []  # each ran under the old plan
    assert report["estimated_seconds"] >= 0
    text = alamode("diff", "old.yaml", "new.yaml", "--store", ".alamode", cwd=tmp_path).stdout
    assert "store .alamode: 1 of 4 new outputs exist (a); to compute: 3 tasks, about" in text


def test_a_run_whose_event_reader_goes_away_stops_cleanly(tmp_path: Path) -> None:
    """``alamode run --json plan | head -3``: the run stops, as on Ctrl-C. What was published
    is recorded, nothing is left marked running, and the next run does only the rest."""
    tasks = "\n".join(
        f"  t{n}: {{spec: {{command: 'sleep 0.3; echo {n} > \"$ALAMODE_OUTPUT/n\"'}}}}"
        for n in range(8)
    )
    spec(tmp_path, f"tasks:\n{tasks}\n")
    runner = start(tmp_path, "run", "p.yaml", "-j", "2", "--json")
    assert runner.stdout is not None and runner.stderr is not None
    first = [json.loads(runner.stdout.readline()) for _ in range(3)]  # two starts, a success
    runner.stdout.close()  # like `head -3`
    runner.wait(timeout=30)
    with runner.stderr:
        assert "Traceback" not in runner.stderr.read()
    assert runner.returncode != 0

    store = LocalStore(tmp_path / ".alamode")
    assert "running" not in [row["status"] for row in store.ledger.history(None, 50)]
    recorded = set(store.outputs.recorded_outputs())
    assert {e["output"] for e in first if e["event"] == "succeed"} <= recorded
    published = {p.name for p in (tmp_path / ".alamode" / "outputs").iterdir()}
    assert published == recorded  # nothing published and left unrecorded

    again = alamode("run", "p.yaml", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    skipped = {e["output"] for e in events if e["event"] == "skip"}
    started = {e["task"] for e in events if e["event"] == "start"}
    assert skipped == recorded  # the first run's work is kept...
    assert len(started) == 8 - len(recorded)  # ...and only the rest runs


def as_a_user() -> list[str]:
    """A prefix that runs a command as an ordinary user would be: without root's override of
    file permissions (CAP_DAC_OVERRIDE and friends), which every test here otherwise has."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and util-linux's setpriv is missing to drop its override")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def test_a_user_without_root_override_runs_redoes_and_collects(tmp_path: Path) -> None:
    """Published outputs are read-only, and moving a directory to another parent needs write
    permission on it: root never lacks that, users do. Once, every task of a user's run
    failed with 'could not publish: Permission denied'."""
    user = [*as_a_user(), *ALAMODE]

    def run_as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*user, *args], cwd=tmp_path, capture_output=True, text=True)

    first = DIAMOND.replace("exit 4", "true")
    spec(tmp_path, first)
    done = run_as_user("-q", "run", "p.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    store = LocalStore(tmp_path / ".alamode")
    tasks = json.loads(alamode("show", "p.yaml", "--json", cwd=tmp_path).stdout)["tasks"]
    b = store.outputs.output_path(tasks["b"]["output"])
    assert (b / "b").read_text() == "a\n"
    assert b.stat().st_mode & 0o222 == 0 and (b / "b").stat().st_mode & 0o222 == 0

    # Modified behind our back: verify drops its record; the next run makes it anew, in
    # place of the read-only directory that is there.
    b.chmod(0o755)
    (b / "b").chmod(0o644)
    (b / "b").write_text("tampered\n")
    b.chmod(0o555)
    assert run_as_user("verify").returncode == 1
    again = run_as_user("run", "p.yaml")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "start   b" in again.stdout and (b / "b").read_text() == "a\n"
    assert b.stat().st_mode & 0o222 == 0

    # gc removes read-only outputs too.
    (tmp_path / "p.yaml").write_text(first.replace("cat ", "cat -- "))
    assert run_as_user("-q", "run", "p.yaml").returncode == 0
    gc = run_as_user("gc", "--keep", "1", "--yes", "--json")
    assert gc.returncode == 0, gc.stderr
    removed = json.loads(gc.stdout)["removed"]
    assert len(removed) == 2 and not any(store.outputs.output_path(o).exists() for o in removed)
