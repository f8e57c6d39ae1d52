"""Running plans for real: local processes, a real store directory and SQLite file."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from a_la_mode.engines.local import LocalEngine

from a_la_mode import AlamodeError, TaskDef, compile_plan
from a_la_mode.compile.plan import Plan
from a_la_mode.review.queries import task_states, verify
from a_la_mode.run.engine import Job
from a_la_mode.run.events import Event, RunInterrupted
from a_la_mode.run.options import RunOptions
from a_la_mode.run.runner import run_plan
from a_la_mode.run.scheduler import State
from a_la_mode.store.directory import LocalStore


def run(plan: Plan, store: LocalStore, **options: Any) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    report = run_plan(plan, store, LocalEngine(), RunOptions(jobs=2, **options), events.append)
    return report, events


def kinds(events: list[Event]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for event in events:
        result.setdefault(event.kind, []).append(event.task)
    return result


def pipeline(top_command: str = 'echo hello > "$ALAMODE_OUTPUT/greeting"') -> Plan:
    return compile_plan(
        {},
        [
            TaskDef("top", {"command": top_command}),
            TaskDef(
                "copy",
                {"command": 'cp "$ALAMODE_INPUT_TOP/greeting" "$ALAMODE_OUTPUT/copy"'},
                ["top"],
            ),
            TaskDef(
                "env",
                {
                    "command": 'env | grep ^ALAMODE_ | sort > "$ALAMODE_OUTPUT/env"; '
                    'echo "$GREETING" > "$ALAMODE_OUTPUT/extra"',
                    "env": {"GREETING": "hi"},
                },
                ["top"],
            ),
            TaskDef(
                "argv",
                {
                    "command": [
                        "/bin/sh",
                        "-c",
                        'echo "$0" > "$ALAMODE_OUTPUT/argv"',
                        "no shell; this is $0",
                    ]
                },
            ),
            TaskDef("join", {}, ["copy", "env"]),
        ],
    )


def alive(pid: int) -> bool:
    """Running, not gone and not a zombie (an orphan's zombie may wait for a lax init)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / ".alamode")


def test_outputs_are_published_and_inputs_wired(store: LocalStore) -> None:
    plan = pipeline()
    report, events = run(plan, store)
    assert report.scheduler.succeeded
    out = {name: store.outputs.output_path(plan.output(name)) for name in plan.tasks}
    assert (out["copy"] / "copy").read_text() == "hello\n"
    assert (out["argv"] / "argv").read_text() == "no shell; this is $0\n"
    assert (out["env"] / "extra").read_text() == "hi\n"
    env = dict(line.split("=", 1) for line in (out["env"] / "env").read_text().splitlines())
    assert env["ALAMODE_TASK"] == "env"
    assert env["ALAMODE_OUTPUT_ID"] == plan.output("env")
    assert env["ALAMODE_INPUT_TOP"] == str(out["top"])
    assert json.loads(env["ALAMODE_INPUTS"]) == {"top": str(out["top"])}
    assert list(out["join"].iterdir()) == []  # a join point's output is empty
    assert sorted(kinds(events)["succeed"]) == sorted(plan.tasks)


def test_published_outputs_are_read_only(store: LocalStore) -> None:
    plan = pipeline()
    run(plan, store)
    greeting = store.outputs.output_path(plan.output("top")) / "greeting"
    assert not greeting.stat().st_mode & 0o222
    assert not greeting.parent.stat().st_mode & 0o222


def test_a_second_run_skips_everything_and_a_change_reruns_its_cone(store: LocalStore) -> None:
    run(pipeline(), store)
    _, events = run(pipeline(), store)
    assert set(kinds(events)) == {"skip", "finish"}
    _, events = run(pipeline('echo bonjour > "$ALAMODE_OUTPUT/greeting"'), store)
    assert sorted(kinds(events)["succeed"]) == ["copy", "env", "join", "top"]
    assert kinds(events)["skip"] == ["argv"]


def test_a_failing_command_records_nothing_and_blocks_downstream(store: LocalStore) -> None:
    plan = pipeline("echo partial > $ALAMODE_OUTPUT/greeting; echo oops >&2; exit 3")
    report, events = run(plan, store, keep_going=True)
    assert not report.scheduler.succeeded
    assert report.scheduler.status["top"].reason == "exited with status 3"
    assert report.scheduler.status["copy"].state is State.BLOCKED
    assert report.scheduler.status["argv"].state is State.SUCCEEDED  # independent branch
    assert not store.outputs.output_path(plan.output("top")).exists()
    assert store.outputs.successes([plan.output("top")]) == set()
    (fail,) = [e for e in events if e.kind == "fail"]
    assert Path(fail.log).read_text() == "oops\n"
    assert list((store.root / "staging").iterdir()) == []


def test_a_command_the_shell_cannot_find_says_so(store: LocalStore) -> None:
    plan = pipeline('tuoch "$ALAMODE_OUTPUT/greeting"')
    report, events = run(plan, store)
    why = "exited with status 127 (the shell found no such command)"
    assert report.scheduler.status["top"].reason == why
    (fail,) = [e for e in events if e.kind == "fail"]
    assert "tuoch" in Path(fail.log).read_text()  # the shell's own words
    # a command given as a list runs without a shell: its 127 is its own, with no gloss
    listed = compile_plan({}, [TaskDef("own", {"command": ["/bin/sh", "-c", "exit 127"]})])
    report, _ = run(listed, store)
    assert report.scheduler.status["own"].reason == "exited with status 127"


def test_a_command_killed_by_a_signal_is_a_failure(store: LocalStore) -> None:
    report, _ = run(pipeline("kill -9 $$"), store)
    assert report.scheduler.status["top"].reason == "killed by signal 9"
    assert store.ledger.history("top", 1)[0]["signal"] == 9


def test_a_timeout_kills_the_whole_process_group(store: LocalStore, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    plan = compile_plan(
        {}, [TaskDef("slow", {"command": f"sleep 60 & echo $! > {pid_file}; wait", "timeout": 1})]
    )
    started = time.monotonic()
    report, _ = run(plan, store)
    assert time.monotonic() - started < 30
    assert report.scheduler.status["slow"].reason == "timed out"
    assert store.ledger.history("slow", 1)[0]["timed_out"] == 1
    assert not alive(int(pid_file.read_text()))


def test_retries_try_again_and_keep_each_attempts_log(store: LocalStore, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    plan = compile_plan(
        {},
        [
            TaskDef(
                "flaky",
                {
                    "command": f"echo try >> {counter}; echo try $(wc -l < {counter}); "
                    f'[ $(wc -l < {counter}) -ge 2 ] && touch "$ALAMODE_OUTPUT/ok"',
                    "retries": 2,
                },
            )
        ],
    )
    report, events = run(plan, store)
    assert report.scheduler.succeeded
    assert kinds(events)["retry"] == ["flaky"]
    assert [row["status"] for row in store.ledger.history("flaky", 5)] == ["succeeded", "failed"]
    logs = store.root / "logs" / plan.output("flaky")
    assert sorted(p.name for p in logs.iterdir()) == ["1.log", "2.log"]
    assert [(logs / f"{n}.log").read_text() for n in (1, 2)] == ["try 1\n", "try 2\n"]


def test_a_command_that_prints_nothing_leaves_no_log_file(store: LocalStore) -> None:
    plan = compile_plan({}, [TaskDef("quiet", {"command": 'touch "$ALAMODE_OUTPUT/x"'})])
    report, _ = run(plan, store)
    assert report.scheduler.succeeded
    assert not (store.root / "logs" / plan.output("quiet")).exists()
    [row] = store.ledger.history("quiet", 5)
    assert row["log"] == f"logs/{plan.output('quiet')}/1.log"  # where it would have been


def test_bad_engine_keys_are_refused_before_anything_runs(store: LocalStore) -> None:
    plan = compile_plan(
        {},
        [TaskDef("a", {"command": "touch x"}), TaskDef("b", {"command": "true", "timeout": "10"})],
    )
    with pytest.raises(AlamodeError, match="task 'b': spec key 'timeout' must be an integer"):
        run(plan, store)
    assert store.ledger.runs(5) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"command": "echo a\0b"}, "'command' must not contain a NUL character"),
        ({"command": ["echo", "a\0b"]}, "'command' must not contain a NUL character"),
        ({"command": "true", "env": {"A=B": "1"}}, "'env': 'A=B' is not a variable"),
        ({"command": "true", "env": {"A": "x\0y"}}, "'env': 'A' is not a variable"),
    ],
)
def test_what_a_command_cannot_be_given_is_refused_before_anything_runs(
    store: LocalStore, spec: dict[str, object], message: str
) -> None:
    """C strings end at NUL and a variable's name at '=': such a spec would run something
    other than it says."""
    plan = compile_plan({}, [TaskDef("t", spec)])
    with pytest.raises(AlamodeError, match=message):
        run(plan, store)
    assert store.ledger.runs(5) == []


def test_a_deleted_output_counts_as_not_done(store: LocalStore) -> None:
    plan = pipeline()
    run(plan, store)
    store.outputs.remove_output(plan.output("copy"))
    states = {s.task: s.label for s in task_states(plan, store)}
    assert states["copy"] == "would run" and states["top"] == "done"
    _, events = run(plan, store)
    assert kinds(events)["succeed"] == ["copy"]


def test_a_modified_output_is_reported_verified_and_redone(store: LocalStore) -> None:
    plan = pipeline()
    run(plan, store)
    greeting = store.outputs.output_path(plan.output("top")) / "greeting"
    greeting.chmod(0o644)
    greeting.write_text("tampered, and longer\n")
    states = {s.task: s for s in task_states(plan, store)}
    assert states["top"].label == "output missing"
    assert "its file greeting was modified" in states["top"].reason
    bad = verify(store, forget=True)
    assert [(task, problem) for _, task, problem in bad] == [
        ("top", "its file greeting was modified")
    ]
    _, events = run(plan, store)
    assert kinds(events)["succeed"] == ["top"]  # same ID, so downstream stays valid
    assert greeting.read_text() == "hello\n"


def test_durations_are_recorded_for_priorities(store: LocalStore) -> None:
    run(pipeline(), store)
    assert set(store.ledger.durations()) == {"top", "copy", "env", "argv", "join"}


def test_a_command_gets_none_of_the_runners_descriptors(store: LocalStore) -> None:
    """Like a shell's child: stdin, stdout and stderr only, even when this process inherited
    an open descriptor that was not close-on-exec."""
    reader, writer = os.pipe()
    os.set_inheritable(writer, True)
    try:
        plan = compile_plan(
            {}, [TaskDef("fds", {"command": 'ls /proc/self/fd > "$ALAMODE_OUTPUT/fds"'})]
        )
        report, _ = run(plan, store)
    finally:
        os.close(reader)
        os.close(writer)
    assert report.scheduler.succeeded
    fds = (store.outputs.output_path(plan.output("fds")) / "fds").read_text().split()
    assert sorted(int(fd) for fd in fds) == [0, 1, 2, 3]  # 3: the directory ls is reading


def test_a_command_gets_default_signal_handling(store: LocalStore) -> None:
    """Python ignores SIGPIPE; a command must not inherit that (``yes | head`` would spin)."""
    plan = compile_plan(
        {}, [TaskDef("sig", {"command": 'grep SigIgn /proc/self/status > "$ALAMODE_OUTPUT/ign"'})]
    )
    run(plan, store)
    ignored = int(
        (store.outputs.output_path(plan.output("sig")) / "ign").read_text().split()[1], 16
    )
    assert not ignored & (1 << (signal.SIGPIPE - 1))


def test_a_command_list_is_found_on_the_tasks_own_path(store: LocalStore, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "make-greeting"
    tool.write_text('#!/bin/sh\necho "$1" > "$ALAMODE_OUTPUT/greeting"\n')
    tool.chmod(0o755)
    plan = compile_plan(
        {},
        [
            TaskDef(
                "tool",
                {"command": ["make-greeting", "hi"], "env": {"PATH": f"{bin_dir}:/usr/bin:/bin"}},
            ),
            TaskDef("missing", {"command": ["no-such-program-here"]}),
        ],
    )
    report, events = run(plan, store, keep_going=True)
    assert (store.outputs.output_path(plan.output("tool")) / "greeting").read_text() == "hi\n"
    assert report.scheduler.status["missing"].reason == (
        "cannot start no-such-program-here: No such file or directory"
    )
    (fail,) = [e for e in events if e.kind == "fail"]
    assert "cannot start no-such-program-here" in Path(fail.log).read_text()


def test_a_task_running_now_elsewhere_is_not_failed_last_time(store: LocalStore) -> None:
    plan = pipeline()
    run_id = store.begin_run(plan, "local")  # a live run (this process) is running "top"
    store.ledger.begin_attempt(run_id, "top", plan.output("top"))
    states = {s.task: s for s in task_states(plan, store)}
    assert states["top"].label == "running"  # not "failed last time", nor "would run"
    assert states["top"].reason == f"being produced by run {run_id} (pid {os.getpid()})"
    assert store.recovery.settle_dead_runs() == []  # its runner is alive: nothing is marked killed
    assert store.ledger.history("top", 1)[0]["status"] == "running"


def test_the_engine_refuses_a_variable_holding_a_nul(tmp_path: Path) -> None:
    """For a library caller that skips the run's checks: said, not cut short."""
    job = Job(
        task="t",
        output_id="ab" * 32,
        command="true",
        env={"A": "x\0y"},
        output_dir=str(tmp_path / "out"),
        inputs={},
        log_path=str(tmp_path / "log"),
    )
    result = LocalEngine().run(job)
    assert not result.ok
    assert result.describe() == "cannot start the command: variable A holds a NUL character"
    assert "variable A holds a NUL character" in (tmp_path / "log").read_text()


def test_an_output_published_while_the_run_stops_is_recorded(store: LocalStore) -> None:
    """The run stops on an error of its own (here: its event reader went away) while a task
    it does not know has finished is already published. That output is whole: it is
    recorded, not left published and unrecorded."""
    plan = compile_plan(
        {},
        [
            TaskDef("quick", {"command": 'echo 1 > "$ALAMODE_OUTPUT/n"'}),
            TaskDef("slow", {"command": "sleep 30"}),
        ],
    )
    quick = store.outputs.output_path(plan.output("quick"))

    def emit(event: Event) -> None:
        if event.kind == "start" and event.task == "slow":
            deadline = time.monotonic() + 10
            while not quick.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # quick publishes while the main thread is still in here
            time.sleep(0.1)
            raise BrokenPipeError("the event reader went away")

    with pytest.raises(BrokenPipeError):
        run_plan(plan, store, LocalEngine(), RunOptions(jobs=2), emit)

    assert quick.exists()
    assert set(store.outputs.recorded_outputs()) == {plan.output("quick")}
    assert "running" not in [row["status"] for row in store.ledger.history(None, 50)]


def chain(length: int, failing: int | None = None) -> Plan:
    """A chain of quick tasks: short enough that the runner claims tasks ahead of their
    upstream; task ``failing`` exits with status 3."""
    return compile_plan(
        {},
        [
            TaskDef(
                f"t{i:02}",
                {"command": "exit 3" if i == failing else 'touch "$ALAMODE_OUTPUT/done"'},
                [f"t{i - 1:02}"] if i else [],
            )
            for i in range(length)
        ],
    )


def test_a_chain_of_quick_tasks_runs_in_order_with_one_attempt_each(store: LocalStore) -> None:
    plan = chain(60)
    report, events = run(plan, store)
    assert report.scheduler.succeeded
    assert [e.task for e in events if e.kind == "start"] == [f"t{i:02}" for i in range(60)]
    history = store.ledger.history(None, 1000)
    assert sorted(row["task"] for row in history) == sorted(plan.tasks)
    assert {row["status"] for row in history} == {"succeeded"}


@pytest.mark.parametrize("keep_going", [False, True])
def test_tasks_claimed_ahead_of_a_failure_leave_no_attempt(
    store: LocalStore, keep_going: bool
) -> None:
    """Tasks below a failure never start, so the history shows no attempt of theirs, even
    of those the runner had claimed before the failure."""
    plan = chain(60, failing=30)
    report, _ = run(plan, store, keep_going=keep_going)
    assert report.scheduler.status["t30"].state is State.FAILED
    assert report.scheduler.status["t31"].state is State.BLOCKED
    history = store.ledger.history(None, 1000)
    assert sorted(row["task"] for row in history) == [f"t{i:02}" for i in range(31)]
    assert {row["status"] for row in history if row["task"] != "t30"} == {"succeeded"}


def test_tasks_claimed_ahead_when_another_branch_fails_leave_no_attempt(
    store: LocalStore,
) -> None:
    plan = chain(200)
    plan = compile_plan(
        {},
        [
            TaskDef("bad", {"command": "sleep 0.2; exit 3"}),
            *(TaskDef(n, dict(plan.spec(n)), list(plan.inputs(n))) for n in plan.tasks),
        ],
    )
    report, events = run(plan, store)
    started = {e.task for e in events if e.kind == "start"}
    assert report.scheduler.status["bad"].state is State.FAILED
    assert report.scheduler.status["t199"].state is State.STOPPED
    assert {row["task"] for row in store.ledger.history(None, 1000)} == started


def test_ctrl_c_leaves_no_attempt_of_tasks_claimed_ahead(store: LocalStore) -> None:
    plan = chain(60)

    def emit(event: Event) -> None:
        if event.kind == "start" and event.task == "t20":
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run_plan(plan, store, LocalEngine(), RunOptions(jobs=2), emit)
    history = store.ledger.history(None, 1000)
    assert "t59" not in {row["task"] for row in history}
    assert max(row["task"] for row in history) <= "t21"  # t20, and t21 queued behind it
    assert "running" not in {row["status"] for row in history}
