"""The default store: a directory with a SQLite database (WAL mode), made of four parts.

    .alamode/
      outputs/<output-id>/      immutable once published              (outputs.py)
      staging/                  in-flight work: <output-id>.<runner>.<random>/, and each
                                runner's journal.<runner>.<random> of outputs it published
                                (<runner>: its pid and start, see processes.py)
      logs/<output-id>/<n>.log  one log per attempt that printed anything   (ledger.py)
      plans/<digest>.bencode    every plan ever run
      state.sqlite              runs, attempts, successes, leases (database.py)

The parts share the database; each owns its tables. ``ledger.py`` keeps runs and
attempts, ``outputs.py`` publishes and records outputs (``publishing.py`` has the journal
and the rename), ``leases.py`` keeps two runners from producing the same output, and
``recovery.py`` settles what a killed runner left.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import StoreError
from a_la_mode.store.contract import Store
from a_la_mode.store.database import Database
from a_la_mode.store.leases import SqliteLeases
from a_la_mode.store.ledger import SqliteLedger
from a_la_mode.store.outputs import FolderOutputs
from a_la_mode.store.recovery import DirectoryRecovery

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
        self.database = Database(self.root, self.where, on_disk=self.exists)
        self.ledger = SqliteLedger(self.database)
        self.outputs = FolderOutputs(self.database, self.ledger)
        self.leases = SqliteLeases(self.database, self.ledger, self.outputs)
        self.recovery = DirectoryRecovery(self.database, self.ledger, self.outputs, self.leases)

    def begin_run(self, plan: PlanBase, engine: str) -> int:
        """Keep the plan, record the run, and start its journal of published outputs."""
        self.outputs.save_plan(plan)
        run = self.ledger.begin_run(plan.digest, engine)
        self.outputs.begin_journal()
        return run

    def end_run(self, run: int, status: str) -> None:
        """Mark the run ended. Every output it published is recorded by now (or discarded):
        its journal goes, and so do the leases it still held."""
        self.outputs.end_journal()
        self.ledger.end_run(run, status)
        self.leases.release_run(run)

    def close(self) -> None:
        self.outputs.end_journal()  # only ever open between begin_run and end_run
        self.database.close()


def _conforms(store: LocalStore) -> Store:
    """Checked by mypy, never called: the directory store is a whole Store."""
    return store
