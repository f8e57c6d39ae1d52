"""The blob store's leases: this machine's (the cache's SQLite leases, for runners here),
then the bucket's: ``leases/<id>``, an object created once, naming its runner and when it
expires, for runners anywhere."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from a_la_mode.run.processes import pid_alive
from a_la_mode.store.leases import SqliteLeases
from a_la_mode.store.ledger import SqliteLedger
from a_la_mode.store.records import HOST, Lease, checked_id

from .bucket import Bucket

if TYPE_CHECKING:
    from .outputs import BlobOutputs

LEASE_SECONDS = float(os.environ.get("ALAMODE_LEASE_SECONDS", 3600))


class BlobLeases:
    """Leases here, then in the bucket."""

    def __init__(
        self, bucket: Bucket, local: SqliteLeases, ledger: SqliteLedger, outputs: BlobOutputs
    ) -> None:
        self.bucket = bucket
        self.local = local
        self._ledger = ledger
        self._outputs = outputs

    def claim(self, output_id: str, run: int, task: str) -> Lease:
        """This machine's lease (SQLite), then the store's (a create-only object)."""
        if self._outputs.done_or_drop(output_id):
            return Lease("done")
        lease = self.local.claim(output_id, run, task)
        if lease.state != "ours":
            return lease
        holder = self._take_lease_object(output_id, run)
        if holder is not None:
            if lease.attempt is not None:
                self._ledger.drop_attempts([lease.attempt])
            self.local.release(output_id)
            return Lease("held", holder)
        return lease

    def claim_many(self, wanted: list[tuple[str, str]], run: int) -> list[Lease]:
        """One at a time: each claim asks the store (marker, lease object) first."""
        return [self.claim(output_id, run, task) for output_id, task in wanted]

    def lease(self, output_id: str, run: int) -> Lease:
        if self._outputs.done_or_drop(output_id):
            return Lease("done")
        lease = self.local.lease(output_id, run)
        if lease.state == "ours":
            holder = self._take_lease_object(output_id, run)
            if holder is not None:
                self.local.release(output_id)
                return Lease("held", holder)
        return lease

    def _take_lease_object(self, output_id: str, run: int) -> str | None:
        """None when the lease object is ours now; else who holds it."""
        key = self.bucket.key("leases", output_id)
        mine = {
            "host": HOST,
            "pid": os.getpid(),
            "run": run,
            "cache": str(self._outputs.root),
            "taken": time.time(),
            "expires": time.time() + LEASE_SECONDS,
        }
        for _ in range(2):
            if self.bucket.create_only(key, json.dumps(mine).encode()):
                return None
            held = self.bucket.read_json(key) or {}
            if _ours(held, self._outputs.root):
                return None
            if not _stale(held):
                return f"pid {held.get('pid')} on {held.get('host')} (lease in the store)"
            # expired, or its runner on this host is gone: take it over
            self.bucket.remove("remove a stale lease", key)
        return "another runner (it took the stale lease first)"

    def release(self, output_id: str) -> None:
        self.local.release(output_id)
        release_lease_object(self.bucket, output_id, self._outputs.root)

    def active_runs(self) -> list[int]:
        """Live leases in the store mean some runner, here or elsewhere, is producing."""
        held = [
            self.bucket.read_json(self.bucket.key("leases", oid)) or {}
            for oid in self.bucket.names("leases")
        ]
        return [int(lease.get("run", 0)) for lease in held if not _stale(lease)]


def release_lease_object(bucket: Bucket, output_id: str, cache: Path) -> None:
    """Remove the bucket's lease on ``output_id`` if this runner (of ``cache``) holds it."""
    key = bucket.key("leases", checked_id(output_id))
    held = bucket.read_json(key)
    if held is not None and _ours(held, cache):
        bucket.remove("release a lease", key)


def _ours(lease: Mapping[str, Any], cache: Path) -> bool:
    return (
        lease.get("host") == HOST
        and lease.get("pid") == os.getpid()
        and lease.get("cache") == str(cache)
    )


def _stale(lease: Mapping[str, Any]) -> bool:
    """Expired, or held by a runner on this host that is gone."""
    if float(lease.get("expires", 0)) < time.time():
        return True
    pid = lease.get("pid")
    taken = lease.get("taken")  # a lease written before 0.2 has none: the pid alone decides
    since = float(taken) if isinstance(taken, (int, float)) else None
    return lease.get("host") == HOST and isinstance(pid, int) and not pid_alive(pid, since)
