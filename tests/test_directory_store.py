"""The directory store: layout, schema version, leases, staging clean-up, ID checks."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from a_la_mode import TaskDef, compile_plan
from a_la_mode.errors import StoreError
from a_la_mode.run.processes import start_ticks, start_time
from a_la_mode.store.directory import LocalStore
from a_la_mode.store.manifest import Manifest
from a_la_mode.store.records import HOST, Success
from a_la_mode.store.recovery import dead_journals

OUTPUT = "ab" * 32


def test_a_new_store_has_its_layout_and_schema(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "logs",
        "outputs",
        "plans",
        "staging",
        "state.sqlite",
        "state.sqlite-shm",
        "state.sqlite-wal",
    ]
    assert store.database.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_alamode_is_refused(tmp_path: Path) -> None:
    LocalStore(tmp_path / "s").close()
    with sqlite3.connect(tmp_path / "s" / "state.sqlite") as db:
        db.execute("UPDATE meta SET value='9' WHERE key='schema'")
    with pytest.raises(StoreError, match="schema version 9, newer than this alamode reads"):
        LocalStore(tmp_path / "s")


def test_a_store_of_schema_1_is_upgraded_in_place_and_keeps_its_history(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    plan = compile_plan({}, [TaskDef("a", {"command": "true"})])
    run = store.begin_run(plan, "local")
    attempt, _ = store.ledger.begin_attempt(run, "a", plan.output("a"))
    store.ledger.end_attempt(attempt, "failed", 1.0, 3, None, False)
    store.close()
    with sqlite3.connect(tmp_path / "s" / "state.sqlite") as db:  # back to version 1's tables
        db.execute("ALTER TABLE attempts DROP COLUMN oom_killed")
        db.execute("ALTER TABLE attempts DROP COLUMN detail")
        db.execute("ALTER TABLE successes DROP COLUMN manifest")
        db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    store = LocalStore(tmp_path / "s")
    assert store.database.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
        "4",
    )
    [row] = store.ledger.history("a", 9)
    assert (row["exit_code"], row["oom_killed"]) == (3, 0)


def test_an_unusable_store_path_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot create store .*file"):
        LocalStore(tmp_path / "file" / "store")


def test_output_ids_are_checked_before_they_become_paths(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    with pytest.raises(StoreError, match="is not an output ID"):
        store.outputs.output_path("../../etc")


def test_a_lease_is_exclusive_until_released_or_its_owner_dies(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    assert store.leases.lease(OUTPUT, run=1).state == "ours"
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from a_la_mode.store.directory import LocalStore;"
            f"print(LocalStore(sys.argv[1]).leases.lease('{OUTPUT}', 2).state)",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    # the child saw our live lease; after it exits, its own lease attempt left nothing behind
    assert holder.stdout.strip() == "held"
    store.leases.release(OUTPUT)
    dead = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from a_la_mode.store.directory import LocalStore;"
            f"print(LocalStore(sys.argv[1]).leases.lease('{OUTPUT}', 3).state)",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert dead.stdout.strip() == "ours"  # taken by a process now dead:
    assert store.leases.lease(OUTPUT, run=4).state == "ours"  # so it is ours again


def test_staging_of_dead_runners_is_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    mine = store.outputs.new_staging(OUTPUT)
    dead = tmp_path / "s" / "staging" / f"{OUTPUT}.999999.deadbeef"
    dead.mkdir()
    assert store.recovery.clean_staging() == [dead.name]
    assert mine.exists()


def test_publish_then_record_makes_a_success(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    plan = compile_plan({}, [TaskDef("t", {})])
    staging = store.outputs.new_staging(OUTPUT)
    (staging / "sub").mkdir()
    (staging / "sub" / "f").write_text("data")
    manifest = store.outputs.publish(OUTPUT, staging)
    assert manifest.files == {
        "sub/f": (4, Manifest.of_directory(store.outputs.output_path(OUTPUT)).files["sub/f"][1])
    }
    assert store.outputs.successes([OUTPUT]) == set()  # published, not yet recorded: not a success
    store.outputs.record_success(Success(OUTPUT, "t", plan.digest, 1, 0.5, "local", manifest))
    assert store.outputs.successes([OUTPUT]) == {OUTPUT}
    assert store.outputs.check_output(OUTPUT, deep=True) is None


def test_files_of_every_size_are_hashed_alike(tmp_path: Path) -> None:
    """Small files are hashed from one read, large ones in chunks: the manifest is sha256
    and size either way, on both sides of the switch and of file_digest's 256 KB buffer."""
    store = LocalStore(tmp_path / "s")
    staging = store.outputs.new_staging(OUTPUT)
    contents = {f"f{size}": os.urandom(size) for size in (0, 10, 65_536, 65_537, 262_144, 700_000)}
    for name, data in contents.items():
        (staging / name).write_bytes(data)
    manifest = store.outputs.publish(OUTPUT, staging)
    assert manifest.files == {
        name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in contents.items()
    }
    assert (
        Manifest.of_directory(store.outputs.output_path(OUTPUT)) == manifest
    )  # what verify re-hashes


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    return int(child.stdout)


def test_a_killed_runner_s_journal_is_settled_by_the_next_run(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    plan = compile_plan({}, [TaskDef("kept", {"n": 1}), TaskDef("changed", {"n": 2})])
    run = store.begin_run(plan, "local")
    for name in ("kept", "changed"):  # run and published, then the runner "dies"
        output = plan.output(name)
        store.ledger.begin_attempt(run, name, output)
        staging = store.outputs.new_staging(output)
        (staging / "f").write_text(name)
        store.outputs.publish(output, staging)
    [journal] = (tmp_path / "s" / "staging").glob("journal.*")
    assert (
        store.recovery.adopt_orphans() == {}
    )  # its runner (this process) is alive: not settled yet
    with journal.open("a") as torn:  # killed mid-write: half a line
        torn.write('{"output": "' + plan.output("kept")[:20])
    journal.rename(journal.with_name(f"journal.{dead_pid()}.0000"))
    changed = store.outputs.output_path(plan.output("changed")) / "f"
    changed.chmod(0o644)
    changed.write_text("CHANGED")  # behind our back, same size: only a re-hash can tell
    assert store.recovery.adopt_orphans() == {plan.output("kept"): "kept"}
    assert store.ledger.history("kept", 1)[0]["status"] == "succeeded"  # only its record was lost
    assert (
        store.ledger.history("changed", 1)[0]["status"] == "running"
    )  # its runner is this process
    assert store.outputs.successes(plan.output(n) for n in plan.tasks) == {plan.output("kept")}
    assert not store.outputs.output_path(plan.output("changed")).exists()  # discarded, made anew
    assert list((tmp_path / "s" / "staging").glob("journal.*")) == []
    assert store.outputs.check_output(plan.output("kept"), deep=True) is None


def test_a_schema_2_store_s_manifest_files_are_still_read(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    staging = store.outputs.new_staging(OUTPUT)
    (staging / "f").write_text("data")
    manifest = store.outputs.publish(OUTPUT, staging)
    store.outputs.record_success(Success(OUTPUT, "t", "ab" * 32, 1, 0.5, "local", manifest))
    store.close()
    with sqlite3.connect(tmp_path / "s" / "state.sqlite") as db:  # as version 2 left it
        db.execute("ALTER TABLE attempts DROP COLUMN detail")
        db.execute("ALTER TABLE successes DROP COLUMN manifest")
        db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    (tmp_path / "s" / "manifests").mkdir()
    (tmp_path / "s" / "manifests" / f"{OUTPUT}.json").write_text(manifest.to_json())
    store = LocalStore(tmp_path / "s")
    assert store.outputs.manifest(OUTPUT) == manifest
    assert store.outputs.check_output(OUTPUT, deep=True) is None
    (tmp_path / "s" / "manifests" / f"{OUTPUT}.json").write_text('{"f": [4, "0000"]}')
    assert store.outputs.check_output(OUTPUT, deep=True) == "its file f was modified"


def test_many_processes_creating_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # each opens the store and then writes at once, as a runner does: one process switching
    # the journal mode while another writes is what used to fail with "database is locked"
    program = (
        "import sys; from a_la_mode.store.directory import LocalStore; "
        "store = LocalStore(sys.argv[1]); "
        "[(store.leases.lease(format(i, '064x'), 1), store.leases.release(format(i, '064x'))) "
        "for i in range(30)]; print('ok')"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", program, str(tmp_path / "fresh")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [child.communicate(timeout=120) for child in children]
    assert [out for out, _ in results] == ["ok\n"] * 6, [err for _, err in results]


@pytest.fixture
def younger_process() -> Iterator[int]:
    """A live process that started after the records below were made: the pid of a runner
    that died an hour ago, now reused by another program."""
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


AN_HOUR_AGO = time.time() - 3600


def test_a_reused_pid_does_not_keep_a_dead_runner_s_run_lease_staging_or_journal(
    tmp_path: Path, younger_process: int
) -> None:
    store = LocalStore(tmp_path / "s")
    plan = compile_plan({}, [TaskDef("a", {"command": "true"})])
    run = store.begin_run(plan, "local")
    with store.database.db:  # rows written an hour ago by a runner with that pid
        store.database.db.execute(
            "UPDATE runs SET pid=?, started=? WHERE id=?", (younger_process, AN_HOUR_AGO, run)
        )
        store.database.db.execute(
            "INSERT INTO leases VALUES (?, ?, ?, ?, ?)",
            (OUTPUT, run, HOST, younger_process, AN_HOUR_AGO),
        )
    # files named by a runner with that pid and an earlier start
    ticks = start_ticks(younger_process)
    assert ticks is not None
    earlier = f"{younger_process}-{ticks - 100}"
    staging = tmp_path / "s" / "staging" / f"{OUTPUT}.{earlier}.deadbeef"
    journal = tmp_path / "s" / "staging" / f"journal.{earlier}.deadbeef"
    staging.mkdir()
    journal.write_text("")

    assert store.leases.active_runs() == []
    assert dead_journals(store.root / "staging") == [journal]
    assert store.leases.lease(OUTPUT, run=run + 1).state == "ours"  # not "held" by the sleep
    assert store.recovery.settle_dead_runs() == [run]
    assert sorted(store.recovery.clean_staging()) == sorted([staging.name, journal.name])


def test_a_live_runner_s_records_are_kept(tmp_path: Path, younger_process: int) -> None:
    """The same records, written by the live process itself: they stay."""
    store = LocalStore(tmp_path / "s")
    with store.database.db:
        store.database.db.execute(
            "INSERT INTO leases VALUES (?, ?, ?, ?, ?)",
            (OUTPUT, 1, HOST, younger_process, time.time()),
        )
    tag = f"{younger_process}-{start_ticks(younger_process)}"
    staging = tmp_path / "s" / "staging" / f"{OUTPUT}.{tag}.deadbeef"
    older_name = tmp_path / "s" / "staging" / f"{OUTPUT}.{younger_process}.deadbeef"
    for folder in (staging, older_name):  # this alamode's names, and older ones (a pid alone)
        folder.mkdir()
    assert store.leases.lease(OUTPUT, run=2).state == "held"
    assert store.recovery.clean_staging() == []
    assert staging.exists() and older_name.exists()


def test_a_process_start_time_is_read_to_a_tenth_of_a_second() -> None:
    before = time.time()
    process = subprocess.Popen(["sleep", "60"])
    after = time.time()
    try:
        started = start_time(process.pid)
    finally:
        process.kill()
        process.wait()
    assert started is not None and before - 0.1 <= started <= after + 0.1
    assert start_time(process.pid) is None  # reaped: no such process any more
