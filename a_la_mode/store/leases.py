"""The directory store's leases: one row per output ID in SQLite, taken under
``BEGIN IMMEDIATE``, so that two runners on this machine never produce the same output.

A claim takes the lease and, in the same transaction, begins the attempt (the ledger's
row); a thousand claims are a few statements, not six per output.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from a_la_mode.run.processes import pid_alive
from a_la_mode.store.database import Database
from a_la_mode.store.ledger import SqliteLedger, log_name
from a_la_mode.store.records import HOST, Lease, checked_id

if TYPE_CHECKING:
    from a_la_mode.store.outputs import FolderOutputs

CLAIM_CHUNK = 500  # outputs per set-based claim: well under SQLite's limit on parameters


class SqliteLeases:
    """Leases in the store's database, for runners of this machine."""

    def __init__(self, database: Database, ledger: SqliteLedger, outputs: FolderOutputs) -> None:
        self._database = database
        self._db = database.db
        self._ledger = ledger
        self._outputs = outputs
        self._root = str(database.root)

    def lease(self, output_id: str, run: int) -> Lease:
        """Take the right to produce ``output_id``, unless it is done or a live runner has it."""
        checked_id(output_id)
        with self._database.writing():
            recorded = bool(self._outputs.recorded_among([output_id]))
            holder = self._db.execute(
                "SELECT run, host, pid, taken FROM leases WHERE output=?", (output_id,)
            ).fetchone()
            refusal = self._refusal(output_id, recorded, holder)
            if refusal is not None:
                return refusal
            self._db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                (output_id, run, HOST, os.getpid(), time.time()),
            )
        return Lease("ours")

    def claim(self, output_id: str, run: int, task: str) -> Lease:
        """``lease``, and when it is ours, start an attempt in the same transaction -- unless
        the output directory is already there (an orphan to inspect first)."""
        return self.claim_many([(output_id, task)], run)[0]

    def claim_many(self, wanted: list[tuple[str, str]], run: int) -> list[Lease]:
        """``claim`` for several (output ID, task) pairs at once: one transaction."""
        leases = []
        with self._database.writing():
            for first in range(0, len(wanted), CLAIM_CHUNK):
                leases.extend(self._claim_chunk(wanted[first : first + CLAIM_CHUNK], run))
        return leases

    def _claim_chunk(self, wanted: list[tuple[str, str]], run: int) -> list[Lease]:
        """``claim`` for each pair, in a few statements for the whole chunk."""
        outputs = [checked_id(output) for output, _ in wanted]
        marks = ",".join("?" * len(outputs))
        recorded = self._outputs.recorded_among(outputs)
        holders = {
            output: rest
            for output, *rest in self._db.execute(
                f"SELECT output, run, host, pid, taken FROM leases WHERE output IN ({marks})",
                outputs,
            )
        }
        tries = self._ledger.attempt_counts(outputs)
        row = self._ledger.last_attempt_row()
        now, me = time.time(), os.getpid()
        replacing = self._outputs.replacing
        taken: list[tuple[Any, ...]] = []
        begun: list[tuple[Any, ...]] = []
        leases = []
        for output, task in wanted:
            again = output in replacing
            lease = self._refusal(output, output in recorded and not again, holders.get(output))
            if lease is None:
                holders[output] = [run, HOST, me, now]
                taken.append((output, run, HOST, me, now))
                if not again and os.path.exists(self._outputs.output_folder(output)):
                    lease = Lease("ours")  # an orphan's directory: to inspect first
                else:
                    row += 1
                    tries[output] = number = tries.get(output, 0) + 1
                    log = log_name(output, number)
                    begun.append((row, run, task, output, number, now, log))
                    lease = Lease("ours", attempt=row, number=number, log=f"{self._root}/{log}")
            leases.append(lease)
        self._db.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)", taken)
        self._ledger.insert_attempts(begun)
        return leases

    def _refusal(self, output_id: str, recorded: bool, holder: Any) -> Lease | None:
        """Why ``output_id`` cannot be ours: done already, or leased by another live runner
        (``holder``: the lease's run, host, pid and when it was taken). None: it can."""
        if recorded and os.path.isdir(self._outputs.output_folder(output_id)):
            return Lease("done")
        if holder is not None:
            holder_run, host, pid, taken = holder
            alive = host != HOST or pid_alive(pid, taken)
            mine = host == HOST and pid == os.getpid()
            if alive and not mine:
                return Lease("held", f"run {holder_run} (pid {pid} on {host})")
        return None

    def release(self, output_id: str) -> None:
        with self._database.writing():
            self._db.execute(
                "DELETE FROM leases WHERE output=? AND host=? AND pid=?",
                (output_id, HOST, os.getpid()),
            )

    def release_run(self, run: int) -> None:
        """Every lease this process still holds for ``run`` (the run has ended)."""
        with self._database.writing():
            self._db.execute(
                "DELETE FROM leases WHERE run=? AND host=? AND pid=?", (run, HOST, os.getpid())
            )

    def drop_dead(self) -> None:
        """Leases of this host's runners that are no longer alive."""
        with self._database.writing():
            for output, pid, taken in self._db.execute(
                "SELECT output, pid, taken FROM leases WHERE host=?", (HOST,)
            ).fetchall():
                if not pid_alive(pid, taken):
                    self._db.execute("DELETE FROM leases WHERE output=?", (output,))

    def active_runs(self) -> list[int]:
        """Runs still marked running whose process is alive (on this host, or elsewhere)."""
        return self._ledger.live_runs()
