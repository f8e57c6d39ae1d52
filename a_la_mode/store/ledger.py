"""The directory store's ledger: runs and attempts in SQLite, and the history read from them.

A run is a row in ``runs`` (which plan, which engine, which process on which host); each try
at a task is a row in ``attempts`` (its number, how it ended, and where its log is, relative
to the store: ``logs/<output-id>/<n>.log``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from a_la_mode.run.processes import pid_alive
from a_la_mode.store.database import Database
from a_la_mode.store.records import HOST, checked_id, dicts


def log_name(output_id: str, attempt: int) -> str:
    """Where attempt ``attempt`` at ``output_id`` logs, relative to the store."""
    return f"logs/{output_id}/{attempt}.log"


class SqliteLedger:
    """Runs and attempts in the store's database; logs under its ``logs/``."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._db = database.db
        self._root = str(database.root)
        # Called with the rows of attempts that have ended (a blob store uploads their logs).
        self.attempts_ended: list[Callable[[list[int]], None]] = []

    # -- runs ------------------------------------------------------------------------------

    def begin_run(self, plan_digest: str, engine: str) -> int:
        with self._database.writing():
            cursor = self._db.execute(
                "INSERT INTO runs (plan, engine, host, pid, started, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                (plan_digest, engine, HOST, os.getpid(), time.time()),
            )
            self._db.execute(
                "INSERT OR IGNORE INTO plans VALUES (?, ?)", (plan_digest, time.time())
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def end_run(self, run: int, status: str) -> None:
        with self._database.writing():
            self._db.execute(
                "UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run)
            )

    def runs(self, limit: int) -> list[dict[str, Any]]:
        return dicts(
            self._db.execute(
                "SELECT id AS run, plan, engine, host, pid, started, finished, status FROM runs "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        )

    def live_runs(self) -> list[int]:
        """Runs still marked running whose process is alive (on this host, or elsewhere)."""
        rows = self._db.execute("SELECT id, host, pid, started FROM runs WHERE status='running'")
        return [run for run, host, pid, started in rows if host != HOST or pid_alive(pid, started)]

    def settle_dead_runs(self) -> list[int]:
        """Runs of this host still marked running whose process is gone (killed, or the
        machine went down): mark each, and its attempts that never finished, ``killed``.
        Returns their IDs."""
        rows = self._db.execute(
            "SELECT id, pid, started FROM runs WHERE status='running' AND host=?", (HOST,)
        ).fetchall()
        dead = [run for run, pid, started in rows if not pid_alive(pid, started)]
        if dead:
            marks = ",".join("?" * len(dead))
            with self._database.not_waiting():  # another process writes: settled next time
                self._db.execute(f"UPDATE runs SET status='killed' WHERE id IN ({marks})", dead)
                self._db.execute(
                    f"UPDATE attempts SET status='killed' WHERE status='running' "
                    f"AND run IN ({marks})",
                    dead,
                )
        return dead

    def plans_run_since(self, since: float) -> list[str]:
        """Digests of the plans run at or after ``since`` (Unix time), newest first."""
        rows = self._db.execute(
            "SELECT plan FROM runs WHERE started >= ? GROUP BY plan ORDER BY MAX(id) DESC",
            (since,),
        )
        return [row[0] for row in rows]

    def plans_run_recently(self, keep: int) -> list[str]:
        """The ``keep`` plans run last, newest first."""
        rows = self._db.execute(
            "SELECT plan FROM runs GROUP BY plan ORDER BY MAX(id) DESC LIMIT ?", (keep,)
        )
        return [row[0] for row in rows]

    # -- attempts --------------------------------------------------------------------------

    def begin_attempt(self, run: int, task: str, output_id: str) -> tuple[int, Path]:
        """Record an attempt's start; return its row ID and the log file to write."""
        with self._database.writing():
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM attempts WHERE output=?", (output_id,)
            ).fetchone()
            log = log_name(checked_id(output_id), count + 1)
            cursor = self._db.execute(
                "INSERT INTO attempts (run, task, output, attempt, started, status, log) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (run, task, output_id, count + 1, time.time(), log),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid, Path(self._root, log)

    def attempt_counts(self, output_ids: list[str]) -> dict[str, int]:
        """How many attempts each of these outputs has had (absent: none)."""
        marks = ",".join("?" * len(output_ids))
        return dict(
            self._db.execute(
                f"SELECT output, COUNT(*) FROM attempts WHERE output IN ({marks}) GROUP BY output",
                output_ids,
            ).fetchall()
        )

    def last_attempt_row(self) -> int:
        (row,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()
        return int(row)

    def insert_attempts(self, begun: list[tuple[Any, ...]]) -> None:
        """Attempts begun by a claim: (row, run, task, output, number, started, log) each,
        inside the claim's transaction."""
        self._db.executemany(
            "INSERT INTO attempts (id, run, task, output, attempt, started, status, log) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
            begun,
        )

    def drop_attempts(self, attempts: list[int]) -> None:
        """Forget attempts claimed but never started (the run stopped before they could)."""
        if attempts:
            with self._database.writing():
                self._db.executemany("DELETE FROM attempts WHERE id=?", [(a,) for a in attempts])

    def end_attempt(
        self,
        attempt: int,
        status: str,
        seconds: float,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        oom_killed: bool = False,
        detail: str = "",
    ) -> None:
        """Record how an attempt that produced no output ended."""
        with self._database.writing():
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
        self.ended([attempt])

    def mark_succeeded(self, finished: Iterable[tuple[int, float]], now: float) -> None:
        """(attempt row, seconds) of attempts whose outputs are being recorded, in the
        recording's transaction."""
        self._db.executemany(
            "UPDATE attempts SET finished=?, seconds=?, exit_code=0, status='succeeded' WHERE id=?",
            [(now, seconds, attempt) for attempt, seconds in finished],
        )

    def mark_adopted(self, row: int, now: float) -> None:
        """Its command succeeded and its output is whole (adopted): only the record was lost."""
        self._db.execute(
            "UPDATE attempts SET status='succeeded', exit_code=0, finished=? "
            "WHERE id=? AND status IN ('running', 'killed')",
            (now, row),
        )

    def last_attempt(self, output_id: str) -> tuple[int, str, int, str, str] | None:
        """The newest attempt at ``output_id``: its row, task, run, plan and engine."""
        row = self._db.execute(
            "SELECT a.id, a.task, a.run, r.plan, r.engine FROM attempts a "
            "JOIN runs r ON r.id = a.run WHERE a.output=? ORDER BY a.id DESC LIMIT 1",
            (output_id,),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2]), row[3], row[4])

    def ended(self, attempts: list[int]) -> None:
        """Tell who listens (``attempts_ended``) that these attempts have ended."""
        for listener in self.attempts_ended:
            listener(attempts)

    def attempt_rows(self, attempts: list[int]) -> list[tuple[int, str, int, Path]]:
        """(run, output, number, log file) of each attempt row."""
        marks = ",".join("?" * len(attempts))
        rows = self._db.execute(
            f"SELECT run, output, attempt, log FROM attempts WHERE id IN ({marks})", attempts
        ).fetchall()
        return [(run, output, number, Path(self._root, log)) for run, output, number, log in rows]

    # -- history ---------------------------------------------------------------------------

    def durations(self) -> dict[str, float]:
        """The last successful duration of each task name, for the scheduler's priorities."""
        rows = self._db.execute(
            "SELECT task, seconds FROM attempts WHERE status='succeeded' ORDER BY id"
        )
        return {task: seconds for task, seconds in rows}

    def attempted_tasks(self) -> list[str]:
        """Every task name with at least one attempt here."""
        return [name for (name,) in self._db.execute("SELECT DISTINCT task FROM attempts")]

    def latest_attempted_output(self, task: str) -> str | None:
        """The output ID of the task's most recent attempt, if it has any."""
        row = self._db.execute(
            "SELECT output FROM attempts WHERE task=? ORDER BY id DESC LIMIT 1", (task,)
        ).fetchone()
        return str(row[0]) if row else None

    def attempted_with_prefix(self, prefix: str) -> list[str]:
        """Output IDs with an attempt that start with ``prefix`` (hex only)."""
        if not re.fullmatch(r"[0-9a-f]+", prefix):
            return []
        rows = self._db.execute(
            "SELECT DISTINCT output FROM attempts WHERE output LIKE ?", (prefix + "%",)
        )
        return sorted(row[0] for row in rows)

    def history(self, task: str | None, limit: int) -> list[dict[str, Any]]:
        """The latest attempts, newest first; ``timed_out`` and ``oom_killed`` as booleans."""
        where, args = ("WHERE a.task=?", (task,)) if task else ("", ())
        rows = dicts(
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

    def attempt_logs(self, output_id: str) -> dict[int, Path]:
        """Attempt number -> its log file (which exists only if the command printed)."""
        rows = self._db.execute(
            "SELECT attempt, log FROM attempts WHERE output=? ORDER BY attempt", (output_id,)
        )
        return {number: Path(self._root, log) for number, log in rows}

    def attempt_running(self, output_id: str, number: int) -> bool:
        """Whether that attempt is still under way: marked running, by a runner that is alive
        (or on another host, where we cannot tell)."""
        row = self._db.execute(
            "SELECT r.host, r.pid, r.started FROM attempts a JOIN runs r ON r.id = a.run "
            "WHERE a.output=? AND a.attempt=? AND a.status='running'",
            (output_id, number),
        ).fetchone()
        return row is not None and (row[0] != HOST or pid_alive(row[1], row[2]))

    def running_attempts(self, output_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Of ``output_ids``, those an attempt is under way for (marked running, by a runner
        that is alive, or on another host): its run, host and pid, by output."""
        if not output_ids:
            return {}
        rows = self._db.execute(
            "SELECT a.output, a.run, r.host, r.pid, r.started FROM attempts a "
            "JOIN runs r ON r.id = a.run WHERE a.status='running' AND r.status='running'"
        ).fetchall()
        return {
            output: {"run": run, "host": host, "pid": pid}
            for output, run, host, pid, started in rows
            if output in output_ids and (host != HOST or pid_alive(pid, started))
        }

    def last_failure(self, output_id: str) -> dict[str, Any] | None:
        rows = dicts(
            self._db.execute(
                "SELECT status, exit_code, signal, timed_out, oom_killed, detail, log "
                "FROM attempts WHERE output=? AND status != 'running' ORDER BY id DESC LIMIT 1",
                (output_id,),
            )
        )
        return rows[0] if rows and rows[0]["status"] != "succeeded" else None
