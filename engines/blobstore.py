"""The blob store: outputs and success markers in S3, or any fsspec filesystem, for a team.

    s3://bucket/prefix    (the extra a-la-mode[s3]; also gs://, az://, file://, memory://)
      outputs/<id>/<upload>/...   the files of one upload of an output
      success/<id>                the marker: JSON, created once with create-only semantics
      leases/<id>                 who is producing <id>, and until when (create-only)
      plans/<digest>              every plan run or pushed
      logs/<id>/<host>-<run>-<attempt>.log

The marker is the only thing that makes an output count, and it is written last, with
``If-None-Match: *`` (fsspec's exclusive-create mode), so it is never overwritten. It names
the upload (a random directory under ``outputs/<id>/``) whose files it lists with sizes and
sha256: two runners that both upload never mix their files, and whichever marker lands
first wins; the loser checks the winner's output and adopts it.

This machine's bookkeeping (runs, attempts, durations, staging, and a cache of fetched and
produced outputs) is a directory store: ``$ALAMODE_CACHE``, else
``~/.cache/alamode/<hash of the URL>``. Two runners on one machine coordinate through its
SQLite database; runners anywhere coordinate through lease objects in the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from a_la_mode.compile.planfile import PlanBase, read_plan
from a_la_mode.errors import StoreError
from a_la_mode.run.faults import pause_point
from a_la_mode.run.processes import pid_alive
from a_la_mode.store.contract import Store
from a_la_mode.store.directory import (
    HOST,
    Lease,
    LocalStore,
    Success,
    checked_id,
    revocation_record,
)
from a_la_mode.store.manifest import Manifest
from a_la_mode.store.remote import fsspec_settings
from a_la_mode.store.signing import sign, signed_by, signing_key

T = TypeVar("T")
LEASE_SECONDS = float(os.environ.get("ALAMODE_LEASE_SECONDS", 3600))
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)  # then give up with a clear error
SUCCESS_FIELDS = ("output", "task", "plan", "run", "recorded", "seconds", "engine", "host")
EMPTY = ".alamode-empty"  # stands for an output with no files: a prefix needs a key
NO_MARKER = "its success marker is missing or unreadable"
LIST_FROM = 32  # from this many IDs on, one LIST of the prefix beats a request per ID
S3_DEFAULTS: dict[str, Any] = {  # no stale listings between runners; faults surface in seconds
    "use_listings_cache": False,
    "config_kwargs": {"connect_timeout": 5, "read_timeout": 30, "retries": {"max_attempts": 2}},
}


class BlobStore(LocalStore):
    """A store whose outputs, markers, leases, plans and logs live at ``url``."""

    scheme = "blob"

    def __init__(
        self, url: str, options: Mapping[str, Any] | None = None, cache: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        defaults = S3_DEFAULTS if protocol in ("s3", "s3a") else {}
        settings = fsspec_settings({**defaults, **(options or {})})
        try:
            self.fs, self.base = fsspec.core.url_to_fs(self.url, **settings)
        except (ImportError, ValueError) as err:
            extra = {"s3": "s3", "gs": "gcs", "az": "azure"}.get(protocol, protocol)
            raise StoreError(
                f"store {url}: {err}; for {protocol}:// install pip install 'a-la-mode[{extra}]'"
            ) from None
        where = cache or os.environ.get("ALAMODE_CACHE")
        if where is None:
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            where = str(Path.home() / ".cache" / "alamode" / digest)
        super().__init__(where)
        self.where = self.url
        self._uploads: dict[str, str] = {}  # output -> its upload, from publish to marker
        self._key_bytes = signing_key()  # markers are signed and checked with it, if set
        # One download of an output at a time: two tasks that share an input start together.
        self._fetching: dict[str, threading.Lock] = {}
        self._fetching_lock = threading.Lock()
        self._check_reachable()

    # -- paths and resilience ----------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def _remote(self, what: str, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``action(*args, **kwargs)`` against the store, retrying faults with backoff."""
        for delay in (*RETRY_DELAYS, None):
            try:
                return action(*args, **kwargs)
            except (FileNotFoundError, FileExistsError):
                raise  # answers, not faults
            except Exception as err:  # the backends raise many kinds: OSError, botocore's...
                if delay is None:
                    raise StoreError(
                        f"store {self.url} failed to {what} after {len(RETRY_DELAYS) + 1} tries "
                        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                        "outputs published before stay valid: run again to resume"
                    ) from None
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _check_reachable(self) -> None:
        """A directory or memory store is created; a bucket must exist (and answer)."""
        if isinstance(self.fs, LocalFileSystem | MemoryFileSystem):
            self.fs.makedirs(self.base, exist_ok=True)
            return
        bucket = self.base.split("/", 1)[0]
        if not self._remote("reach it", self.fs.exists, bucket):
            raise StoreError(
                f"store {self.url}: bucket {bucket!r} does not exist; create it first "
                f"(e.g. 'aws s3 mb s3://{bucket}')"
            )

    def _parent(self, key: str) -> None:
        """Object stores have no folders; a file:// store needs the key's to exist."""
        if isinstance(self.fs, LocalFileSystem):
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)

    def _put(self, what: str, source: Path, key: str) -> None:
        self._parent(key)
        self._remote(what, self.fs.put_file, str(source), key)

    def _remove(self, what: str, key: str, recursive: bool = False) -> None:
        """Delete ``key`` (and what is under it); already gone is fine."""
        with contextlib.suppress(FileNotFoundError):
            self._remote(what, self.fs.rm, key, recursive=recursive)

    def _create_only(self, key: str, data: bytes) -> bool:
        """Write ``key`` unless it exists (``If-None-Match: *`` on S3): True if we wrote it."""

        def write() -> None:
            self._parent(key)
            with self.fs.open(key, "xb") as handle:
                handle.write(data)

        try:
            self._remote(f"create {key}", write)
        except FileExistsError:
            return False
        return True

    def _read_json(self, key: str) -> dict[str, Any] | None:
        try:
            data = self._remote(f"read {key}", self.fs.cat_file, key)
        except FileNotFoundError:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _names(self, *parts: str) -> list[str]:
        """The entries directly under a prefix: one LIST per page of results."""
        try:
            found = self._remote("list", self.fs.ls, self._key(*parts), detail=False)
        except FileNotFoundError:
            return []
        return [str(name).rstrip("/").rsplit("/", 1)[-1] for name in found]

    # -- what is done --------------------------------------------------------------------------

    def marker(self, output_id: str) -> dict[str, Any] | None:
        """The output's marker: None if there is none, or (with a signing key) if it is not
        signed with that key."""
        marker = self._read_json(self._key("success", checked_id(output_id)))
        if marker is not None and self._key_bytes is not None:
            return marker if signed_by(marker, self._key_bytes) else None
        return marker

    def successes(self, output_ids: Iterable[str]) -> set[str]:
        """Outputs with a marker and an upload: two listings, not a request per task (with
        a signing key, each marker is read and its signature checked too)."""
        wanted = set(output_ids)
        if self._key_bytes is not None:
            marked = wanted & set(self._names("success")) & set(self._names("outputs"))
            return {oid for oid in marked if self.marker(oid) is not None}
        if len(wanted) < LIST_FROM:
            return {oid for oid in wanted if self._marked_and_uploaded(oid)}
        return wanted & set(self._names("success")) & set(self._names("outputs"))

    def _marked_and_uploaded(self, output_id: str) -> bool:
        key = self._key("success", checked_id(output_id))
        if not self._remote("look for a marker", self.fs.exists, key):
            return False
        return bool(self._names("outputs", output_id))

    def success_row(self, output_id: str) -> dict[str, Any] | None:
        marker = self.marker(output_id)
        if marker is None:
            return None
        files = marker.get("files", {})
        return {
            **{k: marker.get(k) for k in SUCCESS_FIELDS},
            "files": len(files),
            "bytes": _bytes(files),
        }

    def recorded_outputs(self) -> dict[str, str]:
        return {oid: str(marker.get("task", "?")) for oid, marker in self._all_markers().items()}

    def _all_markers(self) -> dict[str, dict[str, Any]]:
        """Every marker in the store, by output ID: one LIST, then the reads at once."""
        keys = [self._key("success", oid) for oid in self._names("success")]
        if not keys:
            return {}
        found = self._remote("read markers", self.fs.cat, keys, on_error="omit")
        result = {}
        for key, data in found.items():
            try:
                result[str(key).rsplit("/", 1)[-1]] = json.loads(data)
            except ValueError:
                continue
        return result

    def latest_output(self, task: str) -> str | None:
        """This machine's history first; else the newest marker of that task in the store."""
        local = super().latest_output(task)
        if local is not None:
            return local
        markers = self._all_markers().items()
        mine = [(m.get("recorded", 0), oid) for oid, m in markers if m.get("task") == task]
        return max(mine)[1] if mine else None

    def outputs_with_prefix(self, prefix: str) -> list[str]:
        local = super().outputs_with_prefix(prefix)
        remote = [oid for oid in self._names("success") if oid.startswith(prefix)]
        return sorted(set(local) | set(remote))

    def check_output(self, output_id: str, deep: bool) -> str | None:
        """Why a marked output cannot be trusted, or None; ``deep`` re-hashes every file."""
        marker = self.marker(output_id)
        if marker is None:
            if self._key_bytes is not None and self._read_json(self._key("success", output_id)):
                return "its marker is not signed with this store's key"
            return NO_MARKER
        return self._problem(output_id, marker, deep)

    def _problem(self, output_id: str, marker: dict[str, Any], deep: bool) -> str | None:
        """Why the upload ``marker`` names does not match it, or None."""
        upload = self._key("outputs", output_id, str(marker.get("upload", "")))
        try:
            manifest = Manifest.from_dict(marker.get("files", {}))
        except StoreError as err:
            return f"its marker cannot be trusted ({err})"
        try:
            listing = self._remote(
                "list an output", self.fs.find, upload, detail=True, withdirs=False
            )
        except FileNotFoundError:
            listing = {}
        found = {str(k)[len(upload) + 1 :]: int(v.get("size") or 0) for k, v in listing.items()}
        found.pop(EMPTY, None)
        if manifest.files and not found:
            return "its output is missing from the store"
        for name, (size, digest) in manifest.files.items():
            if name not in found:
                return f"its file {name} is missing"
            if found[name] != size:
                return f"its file {name} was modified"
            if deep:
                data = self._remote("read a file", self.fs.cat_file, f"{upload}/{name}")
                if hashlib.sha256(data).hexdigest() != digest:
                    return f"its file {name} was modified"
        extra = sorted(set(found) - set(manifest.files))
        return f"it has an unexpected file {extra[0]}" if extra else None

    def forget(self, output_id: str) -> None:
        """Drop a marker whose output is missing or modified, so the next run redoes it."""
        key = self._key("success", checked_id(output_id))
        self._remove("remove a marker", key)
        super().forget(output_id)
        self._drop_cached(output_id)

    # -- runs, plans and logs ----------------------------------------------------------------

    def save_plan(self, plan: PlanBase) -> None:
        super().save_plan(plan)
        self._create_only(self._key("plans", plan.digest), plan.to_bytes())

    def plan_path(self, digest: str) -> Path:
        path = super().plan_path(digest)
        if not path.exists():
            try:
                data = self._remote("read a plan", self.fs.cat_file, self._key("plans", digest))
            except FileNotFoundError:
                return path
            read_plan(data, self._key("plans", digest), digest).save(path)  # checked first
        return path

    def end_attempt(self, attempt: int, *args: Any, **kwargs: Any) -> None:
        super().end_attempt(attempt, *args, **kwargs)
        self._upload_logs([attempt])

    def _upload_logs(self, attempts: list[int]) -> None:
        marks = ",".join("?" * len(attempts))
        rows = self._db.execute(
            f"SELECT run, output, attempt, log FROM attempts WHERE id IN ({marks})", attempts
        ).fetchall()
        for run, output, number, log in rows:
            path = self.root / log
            if path.exists():
                key = self._key("logs", output, f"{HOST}-{run}-{number}.log")
                self._put("upload a log", path, key)

    # -- producing an output -------------------------------------------------------------------

    def claim(self, output_id: str, run: int, task: str) -> Lease:
        """This machine's lease (SQLite), then the store's (a create-only object)."""
        if self._done_or_drop(output_id):
            return Lease("done")
        lease = super().claim(output_id, run, task)
        if lease.state != "ours":
            return lease
        holder = self._take_remote_lease(output_id, run)
        if holder is not None:
            self._abandon(lease)
            super().release(output_id)
            return Lease("held", holder)
        return lease

    def claim_many(self, wanted: list[tuple[str, str]], run: int) -> list[Lease]:
        """One at a time: each claim asks the store (marker, lease object) first."""
        return [self.claim(output_id, run, task) for output_id, task in wanted]

    def lease(self, output_id: str, run: int) -> Lease:
        if self._done_or_drop(output_id):
            return Lease("done")
        lease = super().lease(output_id, run)
        if lease.state == "ours":
            holder = self._take_remote_lease(output_id, run)
            if holder is not None:
                super().release(output_id)
                return Lease("held", holder)
        return lease

    def _done_or_drop(self, output_id: str) -> bool:
        """Whether a task about to run is done after all (another runner was quicker). A
        marker whose output is missing or no longer matches it is dropped: it can never be
        trusted again, and it would stand in the way of the output being made anew."""
        if output_id in self.replacing:  # run --force: its marker goes once ours is uploaded
            return False
        key = self._key("success", checked_id(output_id))
        marker = self._read_json(key)  # read once; with a signing key, checked here too
        keyed = self._key_bytes
        if marker is not None and keyed is not None and not signed_by(marker, keyed):
            self._remove("remove an unsigned marker", key)  # forged or unsigned: it goes
            marker = None
        if marker is None:
            # The bucket is the truth: a success this cache remembers but the bucket lost
            # (gc elsewhere, a lifecycle rule) is made again, not adopted from the cache.
            LocalStore.forget(self, output_id)
            self._drop_cached(output_id)
            return False
        if self._problem(output_id, marker, deep=False) is None:
            return True
        self.forget(output_id)
        return False

    def _abandon(self, lease: Lease) -> None:
        if lease.attempt is not None:
            self._db.execute("DELETE FROM attempts WHERE id=?", (lease.attempt,))

    def _take_remote_lease(self, output_id: str, run: int) -> str | None:
        """None when the lease object is ours now; else who holds it."""
        key = self._key("leases", output_id)
        mine = {
            "host": HOST,
            "pid": os.getpid(),
            "run": run,
            "cache": str(self.root),
            "taken": time.time(),
            "expires": time.time() + LEASE_SECONDS,
        }
        for _ in range(2):
            if self._create_only(key, json.dumps(mine).encode()):
                return None
            held = self._read_json(key) or {}
            if _ours(held, self.root):
                return None
            if not _stale(held):
                return f"pid {held.get('pid')} on {held.get('host')} (lease in the store)"
            # expired, or its runner on this host is gone: take it over
            self._remove("remove a stale lease", key)
        return "another runner (it took the stale lease first)"

    def release(self, output_id: str) -> None:
        super().release(output_id)
        key = self._key("leases", checked_id(output_id))
        held = self._read_json(key)
        if held is not None and _ours(held, self.root):
            self._remove("release a lease", key)

    fetches_inputs = True

    def fetch(self, output_id: str) -> Path:
        """The output's directory in the cache, downloaded and checked first if need be.
        Worker threads fetching the same output take turns: the second finds the first's
        copy, instead of downloading it again and putting its own in its place while a
        task may be reading it."""
        with self._fetching_lock:
            lock = self._fetching.setdefault(output_id, threading.Lock())
        with lock:
            try:
                return self._fetch(output_id)
            finally:  # whoever comes later finds the copy: the lock has done its work
                with self._fetching_lock:
                    self._fetching.pop(output_id, None)

    def _fetch(self, output_id: str) -> Path:
        target = self.output_path(output_id)
        if target.is_dir():
            return target
        marker = self.marker(output_id)
        if marker is None:
            raise StoreError(f"output {output_id[:12]}… has no success marker in {self.url}")
        try:  # every path checked before anything is written from it
            manifest = Manifest.from_dict(marker.get("files", {}))
        except StoreError as err:
            raise StoreError(
                f"output {output_id[:12]}… in {self.url} has a marker that cannot be trusted "
                f"({err}); 'alamode verify --store {self.url}' drops it"
            ) from None
        staging = self.new_staging(output_id)
        upload = self._key("outputs", output_id, str(marker.get("upload", "")))
        for name in manifest.files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            self._remote(
                "download an input", self.fs.get_file, f"{upload}/{name}", str(staging / name)
            )
        for link, points_to in manifest.links.items():  # links live in the marker only
            (staging / link).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(points_to, staging / link)
        if Manifest.of_directory(staging) != manifest:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(
                f"output {output_id[:12]}… in {self.url} does not match its marker; "
                f"'alamode verify --store {self.url}' drops it, then run again"
            )
        super().publish(output_id, staging)
        return target

    def adopt_orphans(self) -> dict[str, str]:
        """The cache adopts nothing on its own (the markers are the truth): a killed runner's
        journal goes, and its unmarked outputs are dropped when a task claims them."""
        for journal in self.dead_journals():
            journal.unlink(missing_ok=True)
        return {}

    def adopt_orphan(self, output_id: str) -> Manifest | None:
        """A cached copy with no marker is not trusted: drop it and run the task again."""
        self._drop_cached(output_id)
        return None

    def _drop_cached(self, output_id: str) -> None:
        folder = self.output_path(output_id)
        if folder.exists():
            self.discard_output(folder)

    def publish(self, output_id: str, staging: str | Path) -> Manifest:
        """Into the cache, then every file uploaded to a fresh upload directory. The
        marker, written by ``record_successes``, is what makes it count."""
        manifest = super().publish(output_id, staging)
        upload = uuid.uuid4().hex
        source = self.output_path(output_id)
        for number, name in enumerate(manifest.files):
            if number == 1:
                pause_point("mid-upload")
            key = self._key("outputs", output_id, upload, name)
            self._put("upload an output", source / name, key)
        if not manifest.files:  # an empty output still needs its upload to be seen
            key = self._key("outputs", output_id, upload, EMPTY)
            self._parent(key)
            self._remote("upload an output", self.fs.pipe_file, key, b"")
        self._uploads[output_id] = upload
        return manifest

    def make_durable(self, published: Iterable[Success]) -> None:
        """Uploads are durable when the PUT returns: nothing to do."""

    def record_successes(self, finished: list[tuple[int, float, Success]]) -> None:
        """The last step: each marker created once. A runner that loses the race checks
        the winner's output and adopts it, dropping its own upload."""
        if finished:
            pause_point("before-marker")
        for _, _, success in finished:
            upload = self._uploads.pop(success.output, "")
            marker = {
                "output": success.output,
                "task": success.task,
                "plan": success.plan,
                "run": success.run,
                "seconds": success.seconds,
                "engine": success.engine,
                "host": HOST,
                "recorded": time.time(),
                "upload": upload,
                "files": success.manifest.to_dict(),
            }
            if self._key_bytes is not None:
                marker = sign(marker, self._key_bytes)
            if success.output in self.replacing:  # run --force: the new upload replaces it
                self._remove("replace a marker", self._key("success", success.output))
            if not self._create_only(
                self._key("success", success.output), json.dumps(marker, indent=1).encode()
            ):
                self._adopt_winner(success.output, upload)
        super().record_successes(finished)
        self._upload_logs([attempt for attempt, _, _ in finished])
        for _, _, success in finished:
            self.release(success.output)

    def _adopt_winner(self, output_id: str, our_upload: str) -> None:
        winner = self.marker(output_id)
        why = NO_MARKER if winner is None else self._problem(output_id, winner, deep=False)
        if winner is None or why is not None:
            raise StoreError(
                f"output {output_id[:12]}… was published by another runner, but {why}; "
                f"'alamode verify --store {self.url}' drops it"
            )
        if winner.get("upload") != our_upload:
            self._drop_cached(output_id)  # ours may differ; later readers fetch the winner's
            self._remove(
                "remove a losing upload", self._key("outputs", output_id, our_upload), True
            )

    # -- garbage collection ------------------------------------------------------------------

    def _plans_by_age(self) -> list[tuple[float, str]]:
        listing = self._remote("list plans", self.fs.ls, self._key("plans"), detail=True)
        return sorted((_modified(entry) for entry in listing), reverse=True)

    def plans_since(self, since: float) -> list[str]:
        return [digest for stamp, digest in self._plans_by_age() if stamp >= since]

    def all_plans(self) -> list[str]:
        return sorted(set(self._names("plans")) | set(super().all_plans()))

    def recent_plans(self, keep: int) -> list[str]:
        return [digest for _, digest in self._plans_by_age()[:keep]]

    def active_runs(self) -> list[int]:
        """Live leases in the store mean some runner, here or elsewhere, is producing."""
        held = [self._read_json(self._key("leases", oid)) or {} for oid in self._names("leases")]
        return [int(lease.get("run", 0)) for lease in held if not _stale(lease)]

    def remove_output(self, output_id: str) -> int:
        marker = self.marker(output_id) or {}
        freed = _bytes(marker.get("files", {}))
        for folder in ("success", "outputs", "logs"):
            self._remove("remove an output", self._key(folder, checked_id(output_id)), True)
        super().remove_output(output_id)
        return freed

    def stored_outputs(self) -> list[str]:
        return sorted(self._names("outputs"))

    def revoke(self, output_id: str, reason: str, who: str) -> dict[str, Any] | None:
        """The revocation is an object of its own under ``revoked/<id>/`` (appended, never
        overwritten); the marker goes, so no machine uses the output again. Its upload stays
        until ``gc``."""
        row = self.success_row(output_id)
        if row is None:
            return None
        record = revocation_record(output_id, row, reason, who)
        name = f"{record['recorded']:.6f}-{uuid.uuid4().hex[:8]}"
        self._create_only(self._key("revoked", output_id, name), json.dumps(record).encode())
        self._remove("remove a revoked marker", self._key("success", output_id))
        LocalStore.forget(self, output_id)  # this machine's cache, if it knew it
        self._drop_cached(output_id)
        return record

    def revoked_outputs(self) -> set[str]:
        return set(self._names("revoked"))

    def remove_revoked(self) -> int:
        """Remove the uploads of revoked outputs that no marker names (a revoked output made
        again has a new upload and marker); returns the bytes freed."""
        freed = super().remove_revoked()
        for output_id in self._names("revoked"):
            marker = self.marker(output_id) or {}
            for upload in self._names("outputs", output_id):
                if upload != marker.get("upload"):
                    key = self._key("outputs", output_id, upload)
                    with contextlib.suppress(FileNotFoundError, StoreError):
                        freed += int(self._remote("measure an upload", self.fs.du, key))
                    self._remove("remove a revoked upload", key, recursive=True)
        return freed

    def revocations(self, output_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The latest revocation of each output: one LIST, then a read per revoked output."""
        revoked = self._names("revoked")
        wanted = revoked if output_ids is None else set(revoked) & set(output_ids)
        found: dict[str, dict[str, Any]] = {}
        for output_id in sorted(wanted):
            names = sorted(self._names("revoked", output_id))
            record = self._read_json(self._key("revoked", output_id, names[-1])) if names else None
            if record is not None:
                found[output_id] = record
        return found

    def remote_logs(self, output_id: str) -> list[str]:
        """Log names of every attempt at ``output_id``, by any runner, oldest first."""
        try:
            listing = self._remote(
                "list logs", self.fs.ls, self._key("logs", checked_id(output_id)), detail=True
            )
        except FileNotFoundError:
            return []
        return [name for _, name in sorted(_modified(entry) for entry in listing)]

    def read_log(self, output_id: str, name: str) -> bytes:
        data: bytes = self._remote(
            "read a log", self.fs.cat_file, self._key("logs", checked_id(output_id), name)
        )
        return data


def _bytes(files: Mapping[str, Any]) -> int:
    """The bytes a marker's manifest lists (links take none)."""
    return sum(int(entry[0]) for entry in files.values() if isinstance(entry, list))


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


def _modified(entry: Mapping[str, Any]) -> tuple[float, str]:
    """(modification time, name) of a listing entry, whatever the backend calls the time."""
    stamp = entry.get("LastModified") or entry.get("mtime") or entry.get("created") or 0
    seconds = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
    return seconds, str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]


def _conforms(store: BlobStore) -> Store:
    """Checked by mypy, never called: the blob store is a whole Store."""
    return store
