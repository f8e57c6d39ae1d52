"""The directory store's outputs: published folders under ``outputs/``, their success
records (manifest included) in SQLite, revocations, and the plans kept under ``plans/``.

A success whose output folder is missing counts as absent. (Stores of schema 2 kept
manifests in ``manifests/``; they are still read.)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from a_la_mode.compile.planfile import PlanBase, read_plan_file
from a_la_mode.errors import StoreError
from a_la_mode.run.faults import pause_point
from a_la_mode.run.processes import runner_tag
from a_la_mode.store.database import Database
from a_la_mode.store.ledger import SqliteLedger
from a_la_mode.store.manifest import Manifest, mismatch, remove_tree, seal
from a_la_mode.store.publishing import (
    STAGED,
    Journal,
    discard,
    flush,
    rename_into_place,
    set_aside,
)
from a_la_mode.store.records import (
    OUTPUT_ID,
    Refusal,
    Success,
    checked_id,
    dicts,
    random_suffix,
    refusal_record,
    refusals,
    revocation_record,
)


class FolderOutputs:
    """Outputs by ID in ``root/outputs``, recorded in the store's database."""

    fetches_inputs = False  # True where ``fetch`` must bring an input here before it is read

    def __init__(self, database: Database, ledger: SqliteLedger) -> None:
        self.root = database.root
        self._database = database
        self._db = database.db
        self._ledger = ledger
        self._outputs = str(self.root / "outputs")  # str paths: pathlib costs microseconds
        self._staging = str(self.root / "staging")
        self._tag = runner_tag()  # in the names of our staging directories and journal
        self.journal: Journal | None = None  # outputs published by the run in progress
        # Outputs this run makes again though a success is recorded (run --force): claimed
        # as if not done; the old output is set aside (replaced/) only when the new one is
        # renamed into place, and the new record replaces the old.
        self.replacing: frozenset[str] = frozenset()

    # -- what is done ----------------------------------------------------------------------

    def successes(self, output_ids: Iterable[str]) -> set[str]:
        """The given outputs that have a success record and a published directory."""
        recorded = {row[0] for row in self._db.execute("SELECT output FROM successes")}
        if not recorded:  # a new store, or one that does not exist (``exists``)
            return set()
        recorded.intersection_update(os.listdir(self._outputs))  # not a stat per task
        return recorded.intersection(output_ids)

    def recorded_among(self, output_ids: list[str]) -> set[str]:
        """Those of ``output_ids`` with a success record (folder or not)."""
        marks = ",".join("?" * len(output_ids))
        rows = self._db.execute(
            f"SELECT output FROM successes WHERE output IN ({marks})", output_ids
        )
        return {output for (output,) in rows}

    def success_row(self, output_id: str) -> dict[str, Any] | None:
        rows = dicts(
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
        return self._ledger.latest_attempted_output(task)

    def outputs_with_prefix(self, prefix: str) -> list[str]:
        """Output IDs with a success or an attempt that start with ``prefix`` (hex only)."""
        if not re.fullmatch(r"[0-9a-f]+", prefix):
            return []
        rows = self._db.execute("SELECT output FROM successes WHERE output LIKE ?", (prefix + "%",))
        recorded = {row[0] for row in rows}
        return sorted(recorded | set(self._ledger.attempted_with_prefix(prefix)))

    def output_path(self, output_id: str) -> Path:
        return Path(self._outputs, checked_id(output_id))

    def output_folder(self, output_id: str) -> str:
        """``output_path`` as a plain string, for the jobs a run makes by the thousand."""
        return f"{self._outputs}/{checked_id(output_id)}"

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
        with self._database.writing():
            self._db.execute("DELETE FROM successes WHERE output=?", (output_id,))

    def stored_outputs(self) -> list[str]:
        return sorted(name for name in os.listdir(self._outputs) if OUTPUT_ID.match(name))

    # -- plans -----------------------------------------------------------------------------

    def save_plan(self, plan: PlanBase) -> None:
        target = self.root / "plans" / f"{plan.digest}.bencode"
        if not target.exists():
            plan.save(target)

    def plan_path(self, digest: str) -> Path:
        return self.root / "plans" / f"{checked_id(digest)}.bencode"

    def load_plan(self, digest: str) -> PlanBase:
        """The plan this store keeps under ``digest``, checked to have that digest."""
        return read_plan_file(self.plan_path(digest), digest)

    def all_plans(self) -> list[str]:
        """The digest of every plan this store keeps."""
        return sorted(p.stem for p in (self.root / "plans").glob("*.bencode"))

    def plans_since(self, since: float) -> list[str]:
        """Digests of the plans run at or after ``since`` (Unix time), newest first."""
        return self._ledger.plans_run_since(since)

    def recent_plans(self, keep: int) -> list[str]:
        return self._ledger.plans_run_recently(keep)

    # -- publishing --------------------------------------------------------------------------

    def begin_journal(self) -> None:
        """A run begins: what it publishes is journalled until it is recorded."""
        self.journal = Journal(self.root / "staging" / f"journal.{self._tag}.{random_suffix()}")

    def end_journal(self) -> None:
        """The run ended: every output it published is recorded (or discarded) by now."""
        if self.journal is not None:
            self.journal.remove()
            self.journal = None

    def new_staging(self, output_id: str) -> Path:
        """A fresh, empty staging directory for ``output_id``."""
        path = Path(self.staging_path(output_id))
        path.mkdir()
        return path

    def staging_path(self, output_id: str) -> str:
        """A fresh staging directory's name, not created yet: the runner's worker threads
        create it, off the main thread's critical path. Unique: the runner tag names this
        process, a counter the directory."""
        return f"{self._staging}/{checked_id(output_id)}.{self._tag}.{next(STAGED):x}"

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
        if self.journal is not None:
            self.journal.append(output_id, manifest)
        pause_point("before-rename")
        if output_id in self.replacing:  # run --force: the old output is kept, aside
            self._set_aside(output_id, "replaced")
            pause_point("replaced-aside")
        rename_into_place(output_id, staging, target, Path(self._staging))
        pause_point("before-record")
        return manifest

    def discard_output(self, folder: Path) -> None:
        """Remove a (read-only) output directory, through the trash in ``staging/``."""
        discard(folder, Path(self._staging))

    def make_durable(self, published: Iterable[Success]) -> None:
        """Flush every file of these published outputs to disk: the step before recording
        them."""
        files = [
            self.output_path(success.output) / name
            for success in published
            for name in success.manifest.files
        ]
        flush(files, self.root)

    def record_successes(
        self,
        finished: list[tuple[int, float, Success]],
        revoked: dict[str, dict[str, Any]] | None = None,
    ) -> list[Refusal]:
        """Group commit: (attempt row, seconds, success) for outputs already made durable,
        all recorded in one transaction with their attempts' ends. An output built on an
        input revoked now (``revoked`` adds revocations known elsewhere, such as a bucket's)
        is refused in that same transaction, so no revocation slips in between the check
        and the record: its attempt fails, it is revoked in turn, and it is set aside in
        ``revoked/``."""
        now = time.time()
        with self._database.writing():
            refused = refusals(finished, {**self._revoked_inputs(finished), **(revoked or {})})
            for attempt, seconds, success in finished:
                refusal = refused.get(attempt)
                if refusal is not None:
                    self._insert_revocation(refusal_record(success, refusal.reason))
                    self._ledger.end_attempt(
                        attempt, "failed", seconds, None, None, False, detail=refusal.reason
                    )
            kept = [entry for entry in finished if entry[0] not in refused]
            self._ledger.mark_succeeded(((a, seconds) for a, seconds, _ in kept), now)
            self.insert_successes([success for _, _, success in kept], now)
        self._ledger.ended([attempt for attempt, _, _ in kept])  # end_attempt told the rest
        for refusal in refused.values():
            self._set_aside(refusal.output, "revoked")
        return list(refused.values())

    def _revoked_inputs(
        self, finished: list[tuple[int, float, Success]]
    ) -> dict[str, dict[str, Any]]:
        """The batch's inputs that are revoked now: revoked, and not recorded since."""
        inputs = {o for _, _, success in finished for o in success.inputs}
        revoked = self.revocations(inputs) if inputs else {}  # revocations are few: one scan
        if not revoked:
            return {}
        recorded = self._recorded_times(set(revoked))
        return {o: r for o, r in revoked.items() if recorded.get(o, -1.0) < float(r["recorded"])}

    def _recorded_times(self, output_ids: set[str]) -> dict[str, float]:
        ids = sorted(output_ids)
        times: dict[str, float] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            times.update(
                self._db.execute(
                    f"SELECT output, recorded FROM successes WHERE output IN ({marks})", chunk
                )
            )
        return times

    def _insert_revocation(self, record: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO revocations (output, task, plan, run, reason, who, recorded) "
            "VALUES (:output, :task, :plan, :run, :reason, :who, :recorded)",
            record,
        )

    def record_success(self, success: Success) -> None:
        """Record a success on its own (an adopted orphan): one transaction."""
        with self._database.writing():
            self.insert_successes([success], time.time())

    def insert_successes(self, successes: list[Success], now: float) -> None:
        """The success records, inside a transaction; the outputs' leases go with them."""
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

    # -- removal and revocation --------------------------------------------------------------

    def remove_output(self, output_id: str) -> int:
        """Delete an output, its manifest, logs and success record; return bytes freed."""
        folder = self.output_path(output_id)
        freed = (
            sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            if folder.is_dir()
            else 0
        )
        with self._database.writing():
            self._db.execute("DELETE FROM successes WHERE output=?", (output_id,))
        remove_tree(folder)
        shutil.rmtree(self.root / "logs" / output_id, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "manifests" / f"{output_id}.json").unlink()
        return freed

    def revoke(self, output_id: str, reason: str, who: str) -> dict[str, Any] | None:
        """Mark a recorded success as bad, for good: the revocation is appended (who, when,
        why, and which task and plan made the output), the success is dropped so that the
        task runs again, and the output is moved to ``revoked/`` (kept for inspection until
        ``gc``). None if ``output_id`` has no recorded success."""
        row = self.success_row(output_id)
        if row is None:
            return None
        record = revocation_record(output_id, row, reason, who)
        with self._database.writing():
            self._insert_revocation(record)
            self._db.execute("DELETE FROM successes WHERE output=?", (output_id,))
        self._set_aside(output_id, "revoked")
        return record

    def _set_aside(self, output_id: str, where: str) -> None:
        """Move an output to ``revoked/`` or ``replaced/``: no longer used, kept until gc."""
        folder = self.output_path(output_id)
        if folder.is_dir():
            set_aside(folder, self.root / where / f"{output_id}.{random_suffix()}")

    def revoked_outputs(self) -> set[str]:
        """Every output ever revoked (cheap: for a run to poll)."""
        return {row[0] for row in self._db.execute("SELECT DISTINCT output FROM revocations")}

    def revocations(self, output_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The latest revocation of each output (of ``output_ids``, or all)."""
        rows = dicts(
            self._db.execute(
                "SELECT output, task, plan, run, reason, who, recorded FROM revocations ORDER BY id"
            )
        )
        wanted = None if output_ids is None else set(output_ids)
        return {r["output"]: r for r in rows if wanted is None or r["output"] in wanted}

    def set_aside(self) -> list[dict[str, Any]]:
        """Every revoked or replaced output kept for inspection (what ``remove_revoked``
        removes): its output ID, why it was set aside, its size and where it is."""
        found = []
        for kind in ("revoked", "replaced"):
            folder = self.root / kind
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                size = sum(f.lstat().st_size for f in entry.rglob("*") if f.is_file())
                output = entry.name.split(".", 1)[0]
                found.append({"output": output, "kind": kind, "bytes": size, "where": str(entry)})
        return found

    def remove_revoked(self) -> int:
        """Delete every revoked or replaced output kept for inspection; the bytes freed."""
        freed = 0
        for entry in self.set_aside():
            remove_tree(Path(entry["where"]))
            freed += int(entry["bytes"])
        return freed
