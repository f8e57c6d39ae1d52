"""The directory store's SQLite database (WAL mode): its schema, migrations, and writes.

One ``Database`` is shared by the directory store's parts; each part owns its tables:
the ledger ``runs``, ``attempts`` and ``plans``; the outputs ``successes`` and
``revocations``; the leases ``leases``. A write that spans parts (recording a success ends
its attempt and drops its lease) is one transaction: ``writing()`` nests.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from a_la_mode.errors import StoreError
from a_la_mode.store.sizes import human_size

SCHEMA_VERSION = 4
OPEN_TIMEOUT_SECONDS = 60

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
BUSY_TIMEOUT_MS = 60_000
_SCHEMA_OBJECTS = re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", _SCHEMA)
MIGRATIONS = {  # from schema version N to N + 1, run in the set-up transaction
    1: ["ALTER TABLE attempts ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0"],
    2: ["ALTER TABLE successes ADD COLUMN manifest TEXT"],  # NULL: in manifests/<id>.json
    3: ["ALTER TABLE attempts ADD COLUMN detail TEXT"],  # why it failed, in words
    # (version 4's revocations table is made by _SCHEMA, which only adds what is missing)
}


class Database:
    """The store's ``state.sqlite``, or (for a store that does not exist yet) an empty
    database in memory, so that read commands write nothing to disk."""

    def __init__(self, root: Path, where: str, on_disk: bool) -> None:
        self.root = root
        self.where = where  # the store as the user named it, for messages
        self.db = self._open(root / "state.sqlite") if on_disk else self._set_up(":memory:")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A write transaction (or part of the one under way); a full disk or an I/O error
        is a StoreError naming the store and its free space, never a traceback, and leaves
        nothing half-written."""
        if self.db.in_transaction:
            yield
            return
        try:
            with transaction(self.db):
                yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err):
                raise
            raise StoreError(f"store {self.where}: {err} ({self.free_space()})") from None

    @contextlib.contextmanager
    def not_waiting(self) -> Iterator[None]:
        """A write transaction for housekeeping that may be left for later: if another
        process holds the write lock, the work is skipped instead of waited for (a reader
        such as ``alamode status`` never waits behind a writer)."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("PRAGMA busy_timeout=0")
        try:
            with self.writing():
                yield
        except sqlite3.OperationalError as err:
            if "locked" not in str(err):
                raise
        finally:
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def free_space(self) -> str:
        """``"12.3 MB free"`` on the store's filesystem, in words."""
        try:
            return f"{human_size(shutil.disk_usage(self.root).free)} free"
        except OSError:
            return "free space unknown"

    def close(self) -> None:
        self.db.close()

    def _open(self, path: Path) -> sqlite3.Connection:
        """Open (creating if need be) the database. Two runners may create a new store at
        the same moment: switching to WAL takes an exclusive lock, and SQLite may answer
        "locked" there without waiting, so setting up is retried with backoff."""
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
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # NORMAL first: a new database then switches to WAL with 5 fsyncs instead of 6
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_mode=WAL")
            if _up_to_date(db):
                return db  # nothing to make: no write lock taken, so a reader never waits
            with transaction(db):
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


def _up_to_date(db: sqlite3.Connection) -> bool:
    """The schema is this version's and every table is there (read without a lock)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    except sqlite3.OperationalError:
        return False  # a new database: no meta table yet
    if row is None or int(row[0]) != SCHEMA_VERSION:
        return False
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    return all(name in tables for name in _SCHEMA_OBJECTS)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
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


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring an older store up to SCHEMA_VERSION, one version at a time."""
    while version < SCHEMA_VERSION:
        for statement in MIGRATIONS[version]:
            db.execute(statement)
        version += 1
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
