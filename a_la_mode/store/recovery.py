"""Crash recovery for the directory store: what a killed runner left behind, settled before
the next run starts.

- Its runs (and their unfinished attempts) are marked ``killed``.
- Its journal names outputs it renamed into place but never recorded: each is recorded now
  if its files still match the journal's manifest, else discarded. An output it made again
  (``run --force``) whose old record still stands gets the new record, if its files are the
  new ones (the old ones are in ``replaced/``).
- Its staging directories and leases go.
"""

from __future__ import annotations

import time
from pathlib import Path

from a_la_mode.run.processes import tag_alive
from a_la_mode.store.database import Database
from a_la_mode.store.leases import SqliteLeases
from a_la_mode.store.ledger import SqliteLedger
from a_la_mode.store.manifest import Manifest, mismatch, read_only, remove_tree
from a_la_mode.store.outputs import FolderOutputs
from a_la_mode.store.publishing import Journal
from a_la_mode.store.records import Success


class DirectoryRecovery:
    """Settles the journals, runs, staging and leases of dead runners of this host."""

    def __init__(
        self,
        database: Database,
        ledger: SqliteLedger,
        outputs: FolderOutputs,
        leases: SqliteLeases,
    ) -> None:
        self._database = database
        self._ledger = ledger
        self._outputs = outputs
        self._leases = leases
        self._staging = database.root / "staging"

    def settle_dead_runs(self) -> list[int]:
        """Mark the runs of this host whose process is gone ``killed``; their IDs."""
        return self._ledger.settle_dead_runs()

    def adopt_orphans(self) -> dict[str, str]:
        """Settle the journals of runners that were killed: an output they published but
        never recorded is recorded now if its files still match the journal's manifest,
        else discarded. Returns the adopted outputs' tasks by output ID."""
        adopted: dict[str, str] = {}
        for journal in dead_journals(self._staging):
            for output_id, manifest in Journal.read(journal):
                task = self._adopt(output_id, manifest)
                if task is not None:
                    adopted[output_id] = task
            journal.unlink(missing_ok=True)
        return adopted

    def _adopt(self, output_id: str, manifest: Manifest) -> str | None:
        folder = self._outputs.output_path(output_id)
        if not folder.is_dir():
            return None
        if self._outputs.recorded_among([output_id]):
            # run --force killed between the rename and the record: the new files are in
            # place (the old ones in replaced/), the old record stands. Record the new.
            if self._outputs.manifest(output_id) == manifest:
                return None
            if mismatch(folder, manifest, deep=True) is not None:
                return None  # not what the journal says: counts as missing, is made anew
        attempt = self._ledger.last_attempt(output_id)
        if attempt is None or mismatch(folder, manifest, deep=True) is not None:
            self._outputs.discard_output(folder)  # never trusted: it is made anew
            return None
        read_only(str(folder))  # its runner may have died between the rename and this
        row, task, run, plan, engine = attempt
        now = time.time()
        with self._database.writing():
            success = Success(output_id, task, plan, run, 0.0, engine, manifest)
            self._outputs.insert_successes([success], now)
            self._ledger.mark_adopted(row, now)
        return task

    def adopt_orphan(self, output_id: str) -> Manifest | None:
        """An output renamed into place by a runner killed before it recorded success: its
        manifest was written before the rename, so if the files still match it, keep it."""
        folder = self._outputs.output_path(output_id)
        if not folder.is_dir():
            return None
        if self._outputs.check_output(output_id, deep=True) is not None:
            return None
        read_only(str(folder))  # its runner may have died before this
        return self._outputs.manifest(output_id)

    def clean_staging(self) -> list[str]:
        """Remove staging directories of runners that are no longer alive, and their leases;
        return the directories' names."""
        removed = []
        for entry in self._staging.iterdir():
            parts = entry.name.split(".")
            if len(parts) != 3 or not tag_alive(parts[1]) or entry.name.startswith("trash-"):
                remove_tree(entry)
                removed.append(entry.name)
        self._leases.drop_dead()
        return removed


def dead_journals(staging: Path) -> list[Path]:
    """The journals of runners of this host that are no longer alive."""
    dead = []
    for journal in staging.glob("journal.*"):
        parts = journal.name.split(".")
        if not (len(parts) == 3 and tag_alive(parts[1])):
            dead.append(journal)
    return dead
