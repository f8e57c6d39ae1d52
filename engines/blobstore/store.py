"""The blob store, composed: the bucket's outputs, leases and recovery, and the ledger of a
directory store on this machine (its cache)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.store.contract import Store
from a_la_mode.store.directory import LocalStore
from a_la_mode.store.ledger import SqliteLedger
from a_la_mode.store.manifest import Manifest
from a_la_mode.store.records import HOST, checked_id
from a_la_mode.store.recovery import dead_journals

from .bucket import Bucket
from .leases import BlobLeases
from .outputs import BlobOutputs


class BlobStore:
    """A store whose outputs, markers, leases, plans and logs live at ``url``."""

    scheme = "blob"

    def __init__(
        self, url: str, options: Mapping[str, Any] | None = None, cache: str | None = None
    ) -> None:
        self.bucket = Bucket(url, options)
        self.url = self.where = self.bucket.url
        folder = cache or os.environ.get("ALAMODE_CACHE")
        if folder is None:
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            folder = str(Path.home() / ".cache" / "alamode" / digest)
        self.cache = LocalStore(folder)
        self.root = self.cache.root
        self.exists = True
        self.ledger: SqliteLedger = self.cache.ledger
        self.ledger.attempts_ended.append(self._upload_logs)
        self.outputs = BlobOutputs(self.bucket, self.cache.outputs)
        self.leases = BlobLeases(self.bucket, self.cache.leases, self.ledger, self.outputs)
        self.recovery = BlobRecovery(self.cache, self.outputs)

    def worker_settings(self) -> tuple[str, dict[str, Any]] | None:
        """The URL and options a worker elsewhere opens this store with (placement
        "store"): never the credentials among the options, which workers take from their
        own environment. None for a store in this process's memory."""
        if self.url.startswith("memory://"):
            return None
        return self.url, self.bucket.shareable_options()

    def begin_run(self, plan: PlanBase, engine: str) -> int:
        self.outputs.save_plan(plan)
        run = self.ledger.begin_run(plan.digest, engine)
        self.cache.outputs.begin_journal()
        return run

    def end_run(self, run: int, status: str) -> None:
        self.cache.end_run(run, status)

    def close(self) -> None:
        self.cache.close()

    def _upload_logs(self, attempts: list[int]) -> None:
        """Every log of these attempts, to ``logs/<id>/<host>-<run>-<attempt>.log``."""
        for run, output, number, path in self.ledger.attempt_rows(attempts):
            if path.exists():
                key = self.bucket.key("logs", output, f"{HOST}-{run}-{number}.log")
                self.bucket.put("upload a log", path, key)

    def remote_logs(self, output_id: str) -> list[str]:
        """Log names of every attempt at ``output_id``, by any runner, oldest first."""
        return [name for _, name in self.bucket.listing("list logs", "logs", checked_id(output_id))]

    def read_log(self, output_id: str, name: str) -> bytes:
        key = self.bucket.key("logs", checked_id(output_id), name)
        data: bytes = self.bucket.remote("read a log", self.bucket.fs.cat_file, key)
        return data


class BlobRecovery:
    """The markers are the truth: the cache adopts nothing on its own."""

    def __init__(self, cache: LocalStore, outputs: BlobOutputs) -> None:
        self._cache = cache
        self._outputs = outputs

    def adopt_orphans(self) -> dict[str, str]:
        """A killed runner's journal goes; its unmarked outputs are dropped when a task
        claims them."""
        for journal in dead_journals(self._cache.root / "staging"):
            journal.unlink(missing_ok=True)
        return {}

    def adopt_orphan(self, output_id: str) -> Manifest | None:
        """A cached copy with no marker is not trusted: drop it and run the task again."""
        self._outputs.drop_cached(output_id)
        return None

    def settle_dead_runs(self) -> list[int]:
        return self._cache.recovery.settle_dead_runs()

    def clean_staging(self) -> list[str]:
        return self._cache.recovery.clean_staging()


def _conforms(store: BlobStore) -> Store:
    """Checked by mypy, never called: the blob store is a whole Store."""
    return store
