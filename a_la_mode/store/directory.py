"""The default store: a directory with a SQLite database (WAL mode).

    .alamode/
      outputs/<output-id>/      immutable once published
      staging/                  in-flight work: <output-id>.<runner>.<random>/, and each
                                runner's journal.<runner>.<random> of outputs it published
                                (<runner>: its pid and start, see processes.py)
      logs/<output-id>/<n>.log  one log per attempt that printed anything
      plans/<digest>.bencode    every plan ever run
      state.sqlite              runs, attempts, successes, leases (schema version in `meta`)

Publishing follows the success protocol: hash the files into a manifest, append it to the
runner's journal, rename the staging directory to ``outputs/<id>`` (atomic), make the files
durable, and only then record the success, manifest included, in one transaction. A runner
killed between the rename and the record leaves its journal behind: the next one adopts
the outputs that still match it. (Stores of schema 2 kept manifests in ``manifests/``;
they are still read.) A success whose output is missing counts as absent. Leases (one row per output
ID, taken under ``BEGIN IMMEDIATE``) keep two runners from producing the same output.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import itertools
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from a_la_mode.compile.planfile import PlanBase, read_plan_file
from a_la_mode.errors import StoreError
from a_la_mode.run.faults import pause_point
from a_la_mode.run.processes import pid_alive, runner_tag, tag_alive
from a_la_mode.store.contract import Store
from a_la_mode.store.manifest import Manifest, mismatch, read_only, remove_tree, seal
from a_la_mode.store.sizes import human_size

SCHEMA_VERSION = 4
OPEN_TIMEOUT_SECONDS = 60
# What renaming a staging directory onto an output's path says when something is there.
_IN_THE_WAY = frozenset({errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR})
CLAIM_CHUNK = 500  # outputs per set-based claim: well under SQLite's limit on parameters
SYNCFS_FROM_FILES = 4  # measured: one syncfs beats per-file fsyncs from a few files on
OUTPUT_ID = re.compile(r"^[0-9a-f]{64}$")
HOST = os.uname().nodename  # what socket.gethostname() returns, without importing socket

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans (digest TEXT PRIMARY KEY, first_run REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, plan TEXT NOT NULL, engine TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, started REAL NOT NULL, finished REAL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, run INTEGER NOT NULL, task TEXT NOT NULL, output TEXT NOT NULL,
    attempt INTEGER NOT NULL, started REAL NOT NULL, finished REAL, seconds REAL,
    exit_code INTEGER, signal INTEGER, timed_out INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, log TEXT NOT NULL, oom_killed INTEGER NOT NULL DEFAULT 0,
    detail TEXT);
CREATE INDEX IF NOT EXISTS attempts_by_task ON attempts (task, id);
CREATE INDEX IF NOT EXISTS attempts_by_output ON attempts (output, id);
CREATE TABLE IF NOT EXISTS successes (
    output TEXT PRIMARY KEY, task TEXT NOT NULL, plan TEXT NOT NULL, run INTEGER NOT NULL,
    recorded REAL NOT NULL, seconds REAL NOT NULL, engine TEXT NOT NULL, files INTEGER NOT NULL,
    bytes INTEGER NOT NULL, manifest TEXT);
CREATE TABLE IF NOT EXISTS revocations (
    id INTEGER PRIMARY KEY, output TEXT NOT NULL, task TEXT NOT NULL, plan TEXT NOT NULL,
    run INTEGER NOT NULL, reason TEXT NOT NULL, who TEXT NOT NULL, recorded REAL NOT NULL);
CREATE INDEX IF NOT EXISTS revocations_by_output ON revocations (output, id);
CREATE TABLE IF NOT EXISTS leases (
    output TEXT PRIMARY KEY, run INTEGER NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    taken REAL NOT NULL);
"""
MIGRATIONS = {  # from schema version N to N + 1, run in the set-up transaction
    1: ["ALTER TABLE attempts ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0"],
    2: ["ALTER TABLE successes ADD COLUMN manifest TEXT"],  # NULL: in manifests/<id>.json
    3: ["ALTER TABLE attempts ADD COLUMN detail TEXT"],  # why it failed, in words
    # (version 4's revocations table is made by _SCHEMA, which only adds what is missing)
}


DEFAULT_STORE = ".alamode"


def open_store(
    path: str | None, options: dict[str, Any] | None = None, create: bool = True
) -> Store:
    """The store named by ``--store``, ``$ALAMODE_STORE``, or ``.alamode``: a directory, or
    a URL (``s3://bucket/prefix``...) opened by the store plugin registered for its scheme.
    Without ``create``, a directory store that does not exist yet is seen as an empty one
    (``LocalStore.exists`` is False) and nothing is made on disk."""
    where = path or os.environ.get("ALAMODE_STORE") or DEFAULT_STORE
    if "://" in where:
        from a_la_mode.run.plugins import load_store  # only URLs need the plugins

        return load_store(where, options or {})
    if options:
        raise StoreError(f"store {where} is a directory: it takes no --store-option")
    return LocalStore(Path(where), create=create)


class Lease(NamedTuple):
    """The outcome of asking for an output: ours to produce, someone else's, or done."""

    state: str  # "ours", "held" (another live runner), "done" (success already recorded)
    holder: str = ""
    # from claim(), when it started an attempt: its row, its number, and its log file
    attempt: int | None = None
    number: int | None = None
    log: str | None = None


class Success(NamedTuple):
    """What the store records when an output is published."""

    output: str
    task: str
    plan: str  # the plan's digest
    run: int
    seconds: float
    engine: str
    manifest: Manifest


def checked_id(output_id: str) -> str:
    """Refuse anything but a 64-hex-digit output ID before it becomes part of a path."""
    if not OUTPUT_ID.match(output_id):
        raise StoreError(f"{output_id!r} is not an output ID (64 lowercase hex digits)")
    return output_id


class LocalStore:
    """Outputs, logs, plans and run history in one directory."""

    scheme = "dir"

    def __init__(self, root: str | os.PathLike[str], create: bool = True) -> None:
        """The store at ``root``, made if need be; or, without ``create``, when nothing has
        made one there, an empty store that writes nothing to disk (``exists`` is False):
        for commands that only read, so that a mistyped ``--store`` makes no directory."""
        # Absolute: every path a command is given must hold wherever it changes directory to.
        self.root = Path(os.path.abspath(root))
        self.where = str(root)  # as the user named it, for messages
        self.exists = create or (self.root / "state.sqlite").is_file()
        if self.exists:
            try:
                for sub in ("outputs", "staging", "logs", "plans"):
                    (self.root / sub).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create store {self.where}: {err.strerror}") from None
        self._root = str(self.root)  # str paths on the hot paths: pathlib costs microseconds
        self._outputs = str(self.root / "outputs")
        self._tag = runner_tag()  # in the names of our staging directories and journal
        self._db = self._open_db() if self.exists else self._set_up(":memory:")
        self._journal: _Journal | None = None  # outputs published by the run in progress
        # Outputs this run makes again though a success is recorded (run --force): claimed
        # as if not done; the old output is set aside (replaced/) only when the new one is
        # renamed into place, and the new record replaces the old.
        self.replacing: frozenset[str] = frozenset()

    # -- database ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction; a full disk or an I/O error is a StoreError naming the store
        and its free space, never a traceback, and leaves nothing half-written."""
        try:
            with _transaction(self._db):
                yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err):
                raise
            raise StoreError(f"store {self.where}: {err} ({self.free_space()})") from None

    def free_space(self) -> str:
        """``"12.3 MB free"`` on the store's filesystem, in words."""
        try:
            return f"{human_size(shutil.disk_usage(self.root).free)} free"
        except OSError:
            return "free space unknown"

    def _open_db(self) -> sqlite3.Connection:
        """Open (creating if need be) the database. Two runners may create a new store at
        the same moment: switching to WAL takes an exclusive lock, and SQLite may answer
        "locked" there without waiting, so setting up is retried with backoff."""
        path = self.root / "state.sqlite"
        deadline = time.monotonic() + OPEN_TIMEOUT_SECONDS
        delay = 0.01
        while True:
            try:
                return self._set_up(path)
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise StoreError(f"cannot open {path}: {err}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.DatabaseError as err:
                raise StoreError(f"cannot open {path}: {err}") from None

    def _set_up(self, path: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=60000")
            # NORMAL first: a new database then switches to WAL with 5 fsyncs instead of 6
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_mode=WAL")
            with _transaction(db):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) in MIGRATIONS:
                    _migrate(db, int(row[0]))
                elif int(row[0]) != SCHEMA_VERSION:
                    newer = int(row[0]) > SCHEMA_VERSION
                    raise StoreError(
                        f"store {self.where} has schema version {row[0]}, "
                        + (
                            "newer than this alamode reads; upgrade a-la-mode"
                            if newer
                            else f"older than {SCHEMA_VERSION}; migrate it or use a new store"
                        )
                    )
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        if self._journal is not None:
            self._journal.remove()  # only ever open between begin_run and end_run
        self._db.close()

    # -- what is done ----------------------------------------------------------------------

    def successes(self, output_ids: Iterable[str]) -> set[str]:
        """The given outputs that have a success record and a published directory."""
        recorded = {row[0] for row in self._db.execute("SELECT output FROM successes")}
        if not recorded:  # a new store, or one that does not exist (``exists``)
            return set()
        recorded.intersection_update(os.listdir(self.root / "outputs"))  # not a stat per task
        return recorded.intersection(output_ids)

    def success_row(self, output_id: str) -> dict[str, Any] | None:
        rows = _dicts(
            self._db.execute(
                "SELECT output, task, plan, run, recorded, seconds, engine, files, bytes "
                "FROM successes WHERE output=?",
                (output_id,),
            )
        )
        return rows[0] if rows else None

    def recorded_outputs(self) -> dict[str, str]:
        """Every recorded success: output ID -> task name."""
        return dict(self._db.execute("SELECT output, task FROM successes").fetchall())

    def latest_output(self, task: str) -> str | None:
        """The output ID of the task's most recent attempt, if it has any."""
        row = self._db.execute(
            "SELECT output FROM attempts WHERE task=? ORDER BY id DESC LIMIT 1", (task,)
        ).fetchone()
        return str(row[0]) if row else None

    def outputs_with_prefix(self, prefix: str) -> list[str]:
        """Output IDs with a success or an attempt that start with ``prefix`` (hex only)."""
        if not re.fullmatch(r"[0-9a-f]+", prefix):
            return []
        rows = self._db.execute(
            "SELECT output FROM successes WHERE output LIKE ? "
            "UNION SELECT output FROM attempts WHERE output LIKE ?",
            (prefix + "%", prefix + "%"),
        )
        return sorted(row[0] for row in rows)

    def output_path(self, output_id: str) -> Path:
        return Path(self._outputs, checked_id(output_id))

    def output_folder(self, output_id: str) -> str:
        """``output_path`` as a plain string, for the jobs a run makes by the thousand."""
        return f"{self._outputs}/{checked_id(output_id)}"

    fetches_inputs = False  # True where ``fetch`` must bring an input here before it is read

    def fetch(self, output_id: str) -> Path:
        """The output's directory, ready to read as an input (here: it already is)."""
        return self.output_path(output_id)

    def manifest(self, output_id: str) -> Manifest | None:
        """The manifest recorded with the output's success (or, from a schema-2 store, its
        file in ``manifests/``); None if there is none or it is unreadable."""
        row = self._db.execute(
            "SELECT manifest FROM successes WHERE output=?", (checked_id(output_id),)
        ).fetchone()
        try:
            if row is not None and row[0] is not None:
                return Manifest.from_json(row[0])
            return Manifest.from_json((self.root / "manifests" / f"{output_id}.json").read_text())
        except (OSError, ValueError, TypeError, StoreError):
            return None

    def check_output(self, output_id: str, deep: bool) -> str | None:
        """Why a recorded output cannot be trusted, or None. ``deep`` re-hashes every file."""
        folder = self.output_path(output_id)
        if not folder.is_dir():
            return "its output directory is missing"
        manifest = self.manifest(output_id)
        if manifest is None:
            return "its manifest is missing or unreadable"
        return mismatch(folder, manifest, deep)

    def forget(self, output_id: str) -> None:
        """Drop a success record (its output was found missing or modified)."""
        with self._writing():
            self._db.execute("DELETE FROM successes WHERE output=?", (output_id,))

    # -- runs and attempts -------------------------------------------------------------------

    def begin_run(self, plan: PlanBase, engine: str) -> int:
        self.save_plan(plan)
        with self._writing():
            cursor = self._db.execute(
                "INSERT INTO runs (plan, engine, host, pid, started, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                (plan.digest, engine, HOST, os.getpid(), time.time()),
            )
            self._db.execute(
                "INSERT OR IGNORE INTO plans VALUES (?, ?)", (plan.digest, time.time())
            )
        assert cursor.lastrowid is not None
        self._journal = _Journal(self.root / "staging" / f"journal.{self._tag}.{_random()}")
        return cursor.lastrowid

    def end_run(self, run: int, status: str) -> None:
        """Mark the run ended. Every output it published is recorded by now (or discarded):
        its journal goes."""
        if self._journal is not None:
            self._journal.remove()
            self._journal = None
        with self._writing():
            self._db.execute(
                "UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run)
            )
            self._db.execute(
                "DELETE FROM leases WHERE run=? AND host=? AND pid=?", (run, HOST, os.getpid())
            )

    def save_plan(self, plan: PlanBase) -> None:
        target = self.root / "plans" / f"{plan.digest}.bencode"
        if not target.exists():
            plan.save(target)

    def plan_path(self, digest: str) -> Path:
        return self.root / "plans" / f"{checked_id(digest)}.bencode"

    def load_plan(self, digest: str) -> PlanBase:
        """The plan this store keeps under ``digest``, checked to have that digest."""
        return read_plan_file(self.plan_path(digest), digest)

    def begin_attempt(self, run: int, task: str, output_id: str) -> tuple[int, Path]:
        """Record an attempt's start; return its row ID and the log file to write."""
        with self._writing():
            return self._insert_attempt(run, task, output_id)

    def _insert_attempt(self, run: int, task: str, output_id: str) -> tuple[int, Path]:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM attempts WHERE output=?", (output_id,)
        ).fetchone()
        log = _log_name(checked_id(output_id), count + 1)
        cursor = self._db.execute(
            "INSERT INTO attempts (run, task, output, attempt, started, status, log) "
            "VALUES (?, ?, ?, ?, ?, 'running', ?)",
            (run, task, output_id, count + 1, time.time(), log),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid, Path(self._root, log)

    def drop_attempts(self, attempts: list[int]) -> None:
        """Forget attempts claimed but never started (the run stopped before they could)."""
        if attempts:
            with self._writing():
                self._db.executemany("DELETE FROM attempts WHERE id=?", [(a,) for a in attempts])

    def end_attempt(
        self,
        attempt: int,
        status: str,
        seconds: float,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        success: Success | None = None,
        oom_killed: bool = False,
        detail: str = "",
    ) -> None:
        """Record how an attempt ended and, for a published output, its success: one
        transaction, the last step of the success protocol."""
        with self._writing():
            self._db.execute(
                "UPDATE attempts SET finished=?, seconds=?, exit_code=?, signal=?, timed_out=?, "
                "oom_killed=?, status=?, detail=? WHERE id=?",
                (
                    time.time(),
                    seconds,
                    exit_code,
                    signal,
                    int(timed_out),
                    int(oom_killed),
                    status,
                    detail or None,
                    attempt,
                ),
            )
            if success is not None:
                self._insert_successes([success], time.time())

    def durations(self) -> dict[str, float]:
        """The last successful duration of each task name, for the scheduler's priorities."""
        rows = self._db.execute(
            "SELECT task, seconds FROM attempts WHERE status='succeeded' ORDER BY id"
        )
        return {task: seconds for task, seconds in rows}

    def attempted_tasks(self) -> list[str]:
        """Every task name with at least one attempt here."""
        return [name for (name,) in self._db.execute("SELECT DISTINCT task FROM attempts")]

    def history(self, task: str | None, limit: int) -> list[dict[str, Any]]:
        """The latest attempts, newest first; ``timed_out`` and ``oom_killed`` as booleans."""
        where, args = ("WHERE a.task=?", (task,)) if task else ("", ())
        rows = _dicts(
            self._db.execute(
                "SELECT a.run, a.task, a.output, a.attempt, a.started, a.seconds, a.exit_code, "
                "a.signal, a.timed_out, a.oom_killed, a.status, a.log, r.plan FROM attempts a "
                f"JOIN runs r ON r.id = a.run {where} ORDER BY a.id DESC LIMIT ?",
                (*args, limit),
            )
        )
        for row in rows:  # SQLite keeps them as 0 and 1
            row["timed_out"], row["oom_killed"] = bool(row["timed_out"]), bool(row["oom_killed"])
        return rows

    def runs(self, limit: int) -> list[dict[str, Any]]:
        return _dicts(
            self._db.execute(
                "SELECT id AS run, plan, engine, host, pid, started, finished, status FROM runs "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        )

    def attempt_logs(self, output_id: str) -> dict[int, Path]:
        """Attempt number -> its log file (which exists only if the command printed)."""
        rows = self._db.execute(
            "SELECT attempt, log FROM attempts WHERE output=? ORDER BY attempt", (output_id,)
        )
        return {number: self.root / log for number, log in rows}

    def attempt_running(self, output_id: str, number: int) -> bool:
        """Whether that attempt is still under way: marked running, by a runner that is alive
        (or on another host, where we cannot tell)."""
        row = self._db.execute(
            "SELECT r.host, r.pid, r.started FROM attempts a JOIN runs r ON r.id = a.run "
            "WHERE a.output=? AND a.attempt=? AND a.status='running'",
            (output_id, number),
        ).fetchone()
        return row is not None and (row[0] != HOST or pid_alive(row[1], row[2]))

    def last_failure(self, output_id: str) -> dict[str, Any] | None:
        rows = _dicts(
            self._db.execute(
                "SELECT status, exit_code, signal, timed_out, oom_killed, detail, log "
                "FROM attempts WHERE output=? AND status != 'running' ORDER BY id DESC LIMIT 1",
                (output_id,),
            )
        )
        return rows[0] if rows and rows[0]["status"] != "succeeded" else None

    # -- producing an output -----------------------------------------------------------------

    def lease(self, output_id: str, run: int) -> Lease:
        """Take the right to produce ``output_id``, unless it is done or a live runner has it."""
        with self._writing():
            return self._lease(output_id, run)

    def claim(self, output_id: str, run: int, task: str) -> Lease:
        """``lease``, and when it is ours, start an attempt in the same transaction -- unless
        the output directory is already there (an orphan to inspect first)."""
        return self._claim_all([(output_id, task)], run)[0]

    def claim_many(self, wanted: list[tuple[str, str]], run: int) -> list[Lease]:
        """``claim`` for several (output ID, task) pairs at once: one transaction."""
        return self._claim_all(wanted, run)

    def _claim_all(self, wanted: list[tuple[str, str]], run: int) -> list[Lease]:
        leases = []
        with self._writing():
            for first in range(0, len(wanted), CLAIM_CHUNK):
                leases.extend(self._claim_chunk(wanted[first : first + CLAIM_CHUNK], run))
        return leases

    def _claim_chunk(self, wanted: list[tuple[str, str]], run: int) -> list[Lease]:
        """``claim`` for each pair, in a few statements for the whole chunk (not six per
        output: that was most of a cold run's database time)."""
        outputs = [checked_id(output) for output, _ in wanted]
        marks = ",".join("?" * len(outputs))
        recorded = {
            output
            for (output,) in self._db.execute(
                f"SELECT output FROM successes WHERE output IN ({marks})", outputs
            )
        }
        holders = {
            output: rest
            for output, *rest in self._db.execute(
                f"SELECT output, run, host, pid, taken FROM leases WHERE output IN ({marks})",
                outputs,
            )
        }
        tries: dict[str, int] = dict(
            self._db.execute(
                f"SELECT output, COUNT(*) FROM attempts WHERE output IN ({marks}) GROUP BY output",
                outputs,
            ).fetchall()
        )
        (row,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()
        now, me = time.time(), os.getpid()
        taken: list[tuple[Any, ...]] = []
        begun: list[tuple[Any, ...]] = []
        leases = []
        for output, task in wanted:
            replacing = output in self.replacing
            lease = self._refusal(output, output in recorded and not replacing, holders.get(output))
            if lease is None:
                holders[output] = [run, HOST, me, now]
                taken.append((output, run, HOST, me, now))
                if not replacing and os.path.exists(self.output_folder(output)):
                    lease = Lease("ours")  # an orphan's directory: to inspect first
                else:
                    row += 1
                    tries[output] = number = tries.get(output, 0) + 1
                    log = _log_name(output, number)
                    begun.append((row, run, task, output, number, now, log))
                    lease = Lease("ours", attempt=row, number=number, log=f"{self._root}/{log}")
            leases.append(lease)
        self._db.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)", taken)
        self._db.executemany(
            "INSERT INTO attempts (id, run, task, output, attempt, started, status, log) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
            begun,
        )
        return leases

    def _lease(self, output_id: str, run: int) -> Lease:
        checked_id(output_id)
        recorded = self._db.execute("SELECT 1 FROM successes WHERE output=?", (output_id,))
        holder = self._db.execute(
            "SELECT run, host, pid, taken FROM leases WHERE output=?", (output_id,)
        ).fetchone()
        refusal = self._refusal(output_id, recorded.fetchone() is not None, holder)
        if refusal is not None:
            return refusal
        self._db.execute(
            "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
            (output_id, run, HOST, os.getpid(), time.time()),
        )
        return Lease("ours")

    def _refusal(self, output_id: str, recorded: bool, holder: Any) -> Lease | None:
        """Why ``output_id`` cannot be ours: done already, or leased by another live runner
        (``holder``: the lease's run, host, pid and when it was taken). None: it can."""
        if recorded and self.output_path(output_id).is_dir():
            return Lease("done")
        if holder is not None:
            holder_run, host, pid, taken = holder
            alive = host != HOST or pid_alive(pid, taken)
            mine = host == HOST and pid == os.getpid()
            if alive and not mine:
                return Lease("held", f"run {holder_run} (pid {pid} on {host})")
        return None

    def release(self, output_id: str) -> None:
        with self._writing():
            self._db.execute(
                "DELETE FROM leases WHERE output=? AND host=? AND pid=?",
                (output_id, HOST, os.getpid()),
            )

    def new_staging(self, output_id: str) -> Path:
        """A fresh, empty staging directory for ``output_id``."""
        path = Path(self.staging_path(output_id))
        path.mkdir()
        return path

    def staging_path(self, output_id: str) -> str:
        """A fresh staging directory's name, not created yet: the runner's worker threads
        create it, off the main thread's critical path. Unique: the runner tag names this
        process, a counter the directory."""
        return f"{self._root}/staging/{checked_id(output_id)}.{self._tag}.{next(_STAGED):x}"

    def adopt_orphans(self) -> dict[str, str]:
        """Settle the journals of runners that were killed: an output they published but
        never recorded is recorded now if its files still match the journal's manifest,
        else discarded. Returns the adopted outputs' tasks by output ID."""
        adopted: dict[str, str] = {}
        for journal in self.dead_journals():
            for output_id, manifest in _Journal.read(journal):
                task = self._adopt(output_id, manifest)
                if task is not None:
                    adopted[output_id] = task
            journal.unlink(missing_ok=True)
        return adopted

    def dead_journals(self) -> list[Path]:
        """The journals of runners of this host that are no longer alive."""
        dead = []
        for journal in (self.root / "staging").glob("journal.*"):
            parts = journal.name.split(".")
            if not (len(parts) == 3 and tag_alive(parts[1])):
                dead.append(journal)
        return dead

    def _adopt(self, output_id: str, manifest: Manifest) -> str | None:
        folder = self.output_path(output_id)
        recorded = self._db.execute("SELECT 1 FROM successes WHERE output=?", (output_id,))
        if recorded.fetchone() is not None or not folder.is_dir():
            return None
        attempt = self._db.execute(
            "SELECT a.id, a.task, a.run, r.plan, r.engine FROM attempts a "
            "JOIN runs r ON r.id = a.run WHERE a.output=? ORDER BY a.id DESC LIMIT 1",
            (output_id,),
        ).fetchone()
        if attempt is None or mismatch(folder, manifest, deep=True) is not None:
            self.discard_output(folder)  # never trusted: it is made anew
            return None
        read_only(str(folder))  # its runner may have died between the rename and this
        row, task, run, plan, engine = attempt
        now = time.time()
        with self._writing():
            self._insert_successes(
                [Success(output_id, task, plan, run, 0.0, engine, manifest)], now
            )
            # Its command succeeded and its output is whole: only the record was lost.
            self._db.execute(
                "UPDATE attempts SET status='succeeded', exit_code=0, finished=? "
                "WHERE id=? AND status IN ('running', 'killed')",
                (now, row),
            )
        return str(task)

    def clean_staging(self) -> list[str]:
        """Remove staging directories of runners that are no longer alive; return their names."""
        removed = []
        for entry in (self.root / "staging").iterdir():
            parts = entry.name.split(".")
            if len(parts) != 3 or not tag_alive(parts[1]) or entry.name.startswith("trash-"):
                remove_tree(entry)
                removed.append(entry.name)
        with self._writing():
            for output, pid, taken in self._db.execute(
                "SELECT output, pid, taken FROM leases WHERE host=?", (HOST,)
            ).fetchall():
                if not pid_alive(pid, taken):
                    self._db.execute("DELETE FROM leases WHERE output=?", (output,))
        return removed

    def publish(self, output_id: str, staging: str | Path) -> Manifest:
        """Make ``staging`` the output ``output_id``: manifest, read-only, atomic rename.

        Nothing is made durable here: ``make_durable`` must run before the success is
        recorded (the runner does it for a batch at a time). Called from worker threads:
        touches only files, never the database.
        """
        target = self.output_folder(output_id)
        manifest = seal(staging)  # published outputs are immutable, as in a Nix store
        # The journal line and the rename need no fsync of their own: if a power loss drops
        # the line, the orphan is not adopted but re-run; if it drops the rename, the success
        # record (if it survived) points at a missing output, which counts as absent.
        if self._journal is not None:
            self._journal.append(output_id, manifest)
        pause_point("before-rename")
        self._rename_into_place(output_id, staging, target)
        pause_point("before-record")
        return manifest

    def _rename_into_place(self, output_id: str, staging: str | Path, target: str) -> None:
        """Rename ``staging`` to ``target``, discarding an orphan in the way, then make it
        read-only."""
        if output_id in self.replacing:  # run --force: the old output is kept, aside
            self._set_aside(output_id, "replaced")
        try:
            os.rename(staging, target)
        except OSError as err:
            if err.errno not in _IN_THE_WAY:
                raise
            # an orphan of a runner killed before recording success: make way for ours
            self.discard_output(Path(target))
            try:
                os.rename(staging, target)
            except OSError as again:
                if again.errno not in _IN_THE_WAY:
                    raise
                raise StoreError(f"output {output_id[:12]} appeared while publishing") from None
        # Read-only only now: moving a directory to another parent rewrites its '..' entry,
        # which needs write permission on it (only root's override would skip that).
        read_only(target)

    def discard_output(self, folder: Path) -> None:
        """Remove a (read-only) output directory: first renamed out of ``outputs/`` in one
        step, so no reader sees it half-deleted; the trash is cleaned on the next start.
        Made writable first: moving a directory to another parent needs write permission on
        it."""
        trash = self.root / "staging" / f"trash-{_random()}"
        folder.chmod(folder.stat().st_mode | 0o200)
        os.rename(folder, trash)
        remove_tree(trash)

    def make_durable(self, published: Iterable[Success]) -> None:
        """Flush every file of these published outputs to disk: the step before recording
        them. One ``syncfs`` of the store's filesystem for a batch of several files (one
        journal commit), else an fsync per file."""
        files = [
            self.output_path(success.output) / name
            for success in published
            for name in success.manifest.files
        ]
        if len(files) >= SYNCFS_FROM_FILES and _syncfs(self.root):
            return
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def record_successes(self, finished: list[tuple[int, float, Success]]) -> None:
        """Group commit: (attempt row, seconds, success) for outputs already made durable,
        all recorded in one transaction."""
        now = time.time()
        with self._writing():
            self._db.executemany(
                "UPDATE attempts SET finished=?, seconds=?, exit_code=0, status='succeeded' "
                "WHERE id=?",
                [(now, seconds, attempt) for attempt, seconds, _ in finished],
            )
            self._insert_successes([success for _, _, success in finished], now)

    def record_success(self, success: Success) -> None:
        """Record a success on its own (an adopted orphan): one transaction."""
        with self._writing():
            self._insert_successes([success], time.time())

    def _insert_successes(self, successes: list[Success], now: float) -> None:
        self._db.executemany(
            # the latest publish of an output is what its folder holds (run --force)
            "INSERT OR REPLACE INTO successes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    success.output,
                    success.task,
                    success.plan,
                    success.run,
                    now,
                    success.seconds,
                    success.engine,
                    len(success.manifest.files),
                    success.manifest.total_bytes,
                    success.manifest.to_json(),
                )
                for success in successes
            ],
        )
        self._db.executemany(
            "DELETE FROM leases WHERE output=?", [(success.output,) for success in successes]
        )

    def adopt_orphan(self, output_id: str) -> Manifest | None:
        """An output renamed into place by a runner killed before it recorded success: its
        manifest was written before the rename, so if the files still match it, keep it."""
        if not self.output_path(output_id).is_dir():
            return None
        if self.check_output(output_id, deep=True) is not None:
            return None
        read_only(str(self.output_path(output_id)))  # its runner may have died before this
        return self.manifest(output_id)

    # -- garbage collection ----------------------------------------------------------------

    def plans_since(self, since: float) -> list[str]:
        """Digests of the plans run at or after ``since`` (Unix time), newest first."""
        rows = self._db.execute(
            "SELECT plan FROM runs WHERE started >= ? GROUP BY plan ORDER BY MAX(id) DESC",
            (since,),
        )
        return [row[0] for row in rows]

    def all_plans(self) -> list[str]:
        """The digest of every plan this store keeps."""
        return sorted(p.stem for p in (self.root / "plans").glob("*.bencode"))

    def recent_plans(self, keep: int) -> list[str]:
        rows = self._db.execute(
            "SELECT plan FROM runs GROUP BY plan ORDER BY MAX(id) DESC LIMIT ?", (keep,)
        )
        return [row[0] for row in rows]

    def settle_dead_runs(self) -> list[int]:
        """Runs of this host still marked running whose process is gone (killed, or the
        machine went down): mark each, and its attempts that never finished, ``killed``.
        Returns their IDs. What such a runner published is settled by ``adopt_orphans``."""
        rows = self._db.execute(
            "SELECT id, pid, started FROM runs WHERE status='running' AND host=?", (HOST,)
        ).fetchall()
        dead = [run for run, pid, started in rows if not pid_alive(pid, started)]
        if dead:
            marks = ",".join("?" * len(dead))
            with self._writing():
                self._db.execute(f"UPDATE runs SET status='killed' WHERE id IN ({marks})", dead)
                self._db.execute(
                    f"UPDATE attempts SET status='killed' WHERE status='running' "
                    f"AND run IN ({marks})",
                    dead,
                )
        return dead

    def active_runs(self) -> list[int]:
        """Runs still marked running whose process is alive (on this host, or elsewhere)."""
        rows = self._db.execute("SELECT id, host, pid, started FROM runs WHERE status='running'")
        return [run for run, host, pid, started in rows if host != HOST or pid_alive(pid, started)]

    def remove_output(self, output_id: str) -> int:
        """Delete an output, its manifest, logs and success record; return bytes freed."""
        folder = self.output_path(output_id)
        freed = (
            sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            if folder.is_dir()
            else 0
        )
        with self._writing():
            self._db.execute("DELETE FROM successes WHERE output=?", (output_id,))
        remove_tree(folder)
        shutil.rmtree(self.root / "logs" / output_id, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "manifests" / f"{output_id}.json").unlink()
        return freed

    def stored_outputs(self) -> list[str]:
        return sorted(p.name for p in (self.root / "outputs").iterdir() if OUTPUT_ID.match(p.name))

    # -- revocation ----------------------------------------------------------------------

    def revoke(self, output_id: str, reason: str, who: str) -> dict[str, Any] | None:
        """Mark a recorded success as bad, for good: the revocation is appended (who, when,
        why, and which task and plan made the output), the success is dropped so that the
        task runs again, and the output is moved to ``revoked/`` (kept for inspection until
        ``gc``). None if ``output_id`` has no recorded success."""
        row = self.success_row(output_id)
        if row is None:
            return None
        record = revocation_record(output_id, row, reason, who)
        with self._writing():
            self._db.execute(
                "INSERT INTO revocations (output, task, plan, run, reason, who, recorded) "
                "VALUES (:output, :task, :plan, :run, :reason, :who, :recorded)",
                record,
            )
            self._db.execute("DELETE FROM successes WHERE output=?", (output_id,))
        self._set_aside(output_id, "revoked")
        return record

    def _set_aside(self, output_id: str, where: str) -> None:
        """Move an output to ``revoked/`` or ``replaced/``: no longer used, kept until gc."""
        folder = self.output_path(output_id)
        if folder.is_dir():
            aside = self.root / where / f"{output_id}.{_random()}"
            aside.parent.mkdir(exist_ok=True)
            folder.chmod(folder.stat().st_mode | 0o200)  # moving a folder rewrites its '..'
            os.rename(folder, aside)
            read_only(str(aside))

    def revoked_outputs(self) -> set[str]:
        """Every output ever revoked (cheap: for a run to poll)."""
        return {row[0] for row in self._db.execute("SELECT DISTINCT output FROM revocations")}

    def revocations(self, output_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The latest revocation of each output (of ``output_ids``, or all)."""
        rows = _dicts(
            self._db.execute(
                "SELECT output, task, plan, run, reason, who, recorded FROM revocations ORDER BY id"
            )
        )
        wanted = None if output_ids is None else set(output_ids)
        return {r["output"]: r for r in rows if wanted is None or r["output"] in wanted}

    def remove_revoked(self) -> int:
        """Delete every revoked or replaced output kept for inspection; the bytes freed."""
        freed = 0
        for folder in (self.root / "revoked", self.root / "replaced"):
            if folder.is_dir():
                freed += sum(f.lstat().st_size for f in folder.rglob("*") if f.is_file())
                for entry in folder.iterdir():
                    remove_tree(entry)
        return freed


def revocation_record(
    output_id: str, success: dict[str, Any], reason: str, who: str
) -> dict[str, Any]:
    """What a revocation keeps: the output, which task and plan made it (from its success
    row, which goes), why, who, and when."""
    return {
        "output": output_id,
        "task": success["task"],
        "plan": success["plan"],
        "run": success["run"],
        "reason": reason,
        "who": who,
        "recorded": time.time(),
    }


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring an older store up to SCHEMA_VERSION, one version at a time."""
    while version < SCHEMA_VERSION:
        for statement in MIGRATIONS[version]:
            db.execute(statement)
        version += 1
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: take the write lock up front, so two runners
    serialise instead of failing with "database is locked" half-way."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _log_name(output_id: str, attempt: int) -> str:
    """Where attempt ``attempt`` at ``output_id`` logs, relative to the store."""
    return f"logs/{output_id}/{attempt}.log"


_STAGED = itertools.count()  # numbers this process's staging directories


def _random() -> str:
    """Eight hex digits, for names that must not collide."""
    return os.urandom(4).hex()


class _Journal:
    """The outputs a runner published, one JSON line each (output ID and manifest), appended
    before each rename. Removed when the run ends, with every output recorded; left behind
    by a runner that was killed, for the next one to adopt what still matches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()  # publishing happens on several worker threads

    def append(self, output_id: str, manifest: Manifest) -> None:
        """One line: ``{"output":ID,"files":MANIFEST}``."""
        line = f'{{"output":{json.dumps(output_id)},"files":{manifest.to_json()}}}\n'
        os.write(self.descriptor(), line.encode())

    def descriptor(self) -> int:
        """The journal open for appending, opened on first use."""
        with self._lock:
            if self._fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                self._fd = os.open(self.path, flags, 0o644)
            return self._fd

    def remove(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.path.unlink(missing_ok=True)

    @staticmethod
    def read(path: Path) -> Iterator[tuple[str, Manifest]]:
        """Its entries; a torn last line (killed mid-write) is skipped."""
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                yield checked_id(entry["output"]), Manifest.from_dict(entry["files"])
            except (ValueError, KeyError, TypeError, AttributeError, StoreError):
                continue


def _syncfs(path: Path) -> bool:
    """syncfs(2) on the filesystem holding ``path``; False where it is unavailable."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """Rows as dicts keyed by column name (or alias)."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
