"""The blob store's outputs: uploads and success markers in the bucket, a checked copy of
each in this machine's cache (a directory store's outputs), plans and revocations.

The marker is the only thing that makes an output count, and it is written last, with
``If-None-Match: *`` (fsspec's exclusive-create mode), so it is never overwritten. It names
the upload (a random directory under ``outputs/<id>/``) whose files it lists with sizes and
sha256: two runners that both upload never mix their files, and whichever marker lands
first wins; the loser checks the winner's output and adopts it.
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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from a_la_mode.compile.planfile import PlanBase, read_plan, read_plan_file
from a_la_mode.errors import StoreError
from a_la_mode.run.faults import pause_point
from a_la_mode.store.manifest import Manifest
from a_la_mode.store.outputs import FolderOutputs
from a_la_mode.store.records import (
    HOST,
    Refusal,
    Success,
    checked_id,
    refusal_record,
    refusals,
    revocation_record,
)
from a_la_mode.store.signing import sign, signed_by

from .bucket import Bucket
from .leases import release_lease_object

SUCCESS_FIELDS = (
    "output", "task", "plan", "run", "recorded", "seconds", "engine", "host", "worker"
)  # fmt: skip
EMPTY = ".alamode-empty"  # stands for an output with no files: a prefix needs a key
NO_MARKER = "its success marker is missing or unreadable"
LIST_FROM = 32  # from this many IDs on, one LIST of the prefix beats a request per ID


class BlobOutputs:
    """Outputs in the bucket; ``cache`` holds this machine's checked copies."""

    fetches_inputs = True  # an input is downloaded into the cache before a task reads it

    def __init__(self, bucket: Bucket, cache: FolderOutputs) -> None:
        self.bucket = bucket
        self.cache = cache
        self.root = cache.root
        self._uploads: dict[str, str] = {}  # output -> its upload, from publish to marker
        # One download of an output at a time: two tasks that share an input start together.
        self._fetching: dict[str, threading.Lock] = {}
        self._fetching_lock = threading.Lock()

    @property
    def replacing(self) -> frozenset[str]:
        """Outputs made again though marked (run --force); the cache replaces them too."""
        return self.cache.replacing

    @replacing.setter
    def replacing(self, outputs: frozenset[str]) -> None:
        self.cache.replacing = outputs

    # -- what is done --------------------------------------------------------------------------

    def successes(self, output_ids: Iterable[str]) -> set[str]:
        """Outputs with a marker whose own upload (the one it names, not any upload of that
        output: another runner's orphan may lie beside it) is in the bucket. Few IDs: a
        marker read and a listing each; many: one LIST of markers, their reads at once, and
        one listing of every upload."""
        wanted = set(output_ids)
        if len(wanted) < LIST_FROM:
            return {oid for oid in wanted if self._marked_and_uploaded(oid)}
        markers = self._markers(wanted & set(self.bucket.names("success")))
        if not markers:
            return set()
        uploads = self._uploads_in_bucket()
        return {oid for oid, m in markers.items() if (oid, str(m.get("upload", ""))) in uploads}

    def _marked_and_uploaded(self, output_id: str) -> bool:
        marker = self.bucket.marker(output_id)  # with a signing key, checked too
        if marker is None:
            return False
        return str(marker.get("upload", "")) in self.bucket.names("outputs", output_id)

    def _markers(self, output_ids: set[str], signed_only: bool = True) -> dict[str, dict[str, Any]]:
        """The markers of ``output_ids`` (read at once); with a signing key, the signed ones
        (unless not ``signed_only``: what is there, for the commands that say what is wrong)."""
        keys = [self.bucket.key("success", checked_id(oid)) for oid in sorted(output_ids)]
        if not keys:
            return {}
        found = self.bucket.remote("read markers", self.bucket.fs.cat, keys, on_error="omit")
        markers: dict[str, dict[str, Any]] = {}
        keyed = self.bucket.signing_key if signed_only else None
        for key, data in found.items():
            with contextlib.suppress(ValueError):
                marker = json.loads(data)
                if isinstance(marker, dict) and (keyed is None or signed_by(marker, keyed)):
                    markers[str(key).rsplit("/", 1)[-1]] = marker
        return markers

    def _uploads_in_bucket(self) -> set[tuple[str, str]]:
        """(output, upload) of every upload folder that holds a file: one listing."""
        prefix = self.bucket.key("outputs")
        try:
            keys = self.bucket.remote("list uploads", self.bucket.fs.find, prefix)
        except FileNotFoundError:
            return set()
        pairs = set()
        for key in keys:
            parts = str(key)[len(prefix) :].strip("/").split("/")
            if len(parts) >= 3:
                pairs.add((parts[0], parts[1]))
        return pairs

    def success_row(self, output_id: str) -> dict[str, Any] | None:
        marker = self.bucket.marker(output_id)
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
        return self._markers(set(self.bucket.names("success")), signed_only=False)

    def latest_output(self, task: str) -> str | None:
        """This machine's history first; else the newest marker of that task in the store."""
        local = self.cache.latest_output(task)
        if local is not None:
            return local
        markers = self._all_markers().items()
        mine = [(m.get("recorded", 0), oid) for oid, m in markers if m.get("task") == task]
        return max(mine)[1] if mine else None

    def outputs_with_prefix(self, prefix: str) -> list[str]:
        local = self.cache.outputs_with_prefix(prefix)
        remote = [oid for oid in self.bucket.names("success") if oid.startswith(prefix)]
        return sorted(set(local) | set(remote))

    def output_path(self, output_id: str) -> Path:
        return self.cache.output_path(output_id)

    def output_folder(self, output_id: str) -> str:
        return self.cache.output_folder(output_id)

    def staging_path(self, output_id: str) -> str:
        return self.cache.staging_path(output_id)

    def new_staging(self, output_id: str) -> Path:
        return self.cache.new_staging(output_id)

    def manifest(self, output_id: str) -> Manifest | None:
        """The manifest the output's marker lists; None without a trusted marker."""
        marker = self.bucket.marker(output_id)
        try:
            return None if marker is None else Manifest.from_dict(marker.get("files", {}))
        except StoreError:
            return None

    def check_output(self, output_id: str, deep: bool) -> str | None:
        """Why a marked output cannot be trusted, or None; ``deep`` re-hashes every file."""
        marker = self.bucket.marker(output_id)
        if marker is None:
            key = self.bucket.key("success", output_id)
            if self.bucket.signing_key is not None and self.bucket.read_json(key):
                return "its marker is not signed with this store's key"
            return NO_MARKER
        return self.problem(output_id, marker, deep)

    def problem(self, output_id: str, marker: dict[str, Any], deep: bool) -> str | None:
        """Why the upload ``marker`` names does not match it, or None."""
        bucket = self.bucket
        upload = bucket.key("outputs", output_id, str(marker.get("upload", "")))
        try:
            manifest = Manifest.from_dict(marker.get("files", {}))
        except StoreError as err:
            return f"its marker cannot be trusted ({err})"
        try:
            listing = bucket.remote(
                "list an output", bucket.fs.find, upload, detail=True, withdirs=False
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
                data = bucket.remote("read a file", bucket.fs.cat_file, f"{upload}/{name}")
                if hashlib.sha256(data).hexdigest() != digest:
                    return f"its file {name} was modified"
        extra = sorted(set(found) - set(manifest.files))
        return f"it has an unexpected file {extra[0]}" if extra else None

    def done_or_drop(self, output_id: str) -> bool:
        """Whether a task about to run is done after all (another runner was quicker). A
        marker whose output is missing or no longer matches it is dropped: it can never be
        trusted again, and it would stand in the way of the output being made anew."""
        if output_id in self.replacing:  # run --force: its marker goes once ours is uploaded
            return False
        key = self.bucket.key("success", checked_id(output_id))
        marker = self.bucket.read_json(key)  # read once; with a signing key, checked here too
        keyed = self.bucket.signing_key
        if marker is not None and keyed is not None and not signed_by(marker, keyed):
            self.bucket.remove("remove an unsigned marker", key)  # forged or unsigned: it goes
            marker = None
        if marker is None:
            # The bucket is the truth: a success this cache remembers but the bucket lost
            # (gc elsewhere, a lifecycle rule) is made again, not adopted from the cache.
            self.cache.forget(output_id)
            self.drop_cached(output_id)
            return False
        if self.problem(output_id, marker, deep=False) is None:
            return True
        self.forget(output_id)
        return False

    def forget(self, output_id: str) -> None:
        """Drop a marker whose output is missing or modified, so the next run redoes it."""
        self.bucket.remove("remove a marker", self.bucket.key("success", checked_id(output_id)))
        self.cache.forget(output_id)
        self.drop_cached(output_id)

    def stored_outputs(self) -> list[str]:
        return sorted(self.bucket.names("outputs"))

    # -- plans -------------------------------------------------------------------------------

    def save_plan(self, plan: PlanBase) -> None:
        self.cache.save_plan(plan)
        self.bucket.create_only(self.bucket.key("plans", plan.digest), plan.to_bytes())

    def plan_path(self, digest: str) -> Path:
        """The plan in the cache, downloaded (and checked) first if need be."""
        path = self.cache.plan_path(digest)
        if not path.exists():
            key = self.bucket.key("plans", digest)
            try:
                data = self.bucket.remote("read a plan", self.bucket.fs.cat_file, key)
            except FileNotFoundError:
                return path
            read_plan(data, key, digest).save(path)  # checked first
        return path

    def load_plan(self, digest: str) -> PlanBase:
        return read_plan_file(self.plan_path(digest), digest)

    def all_plans(self) -> list[str]:
        return sorted(set(self.bucket.names("plans")) | set(self.cache.all_plans()))

    def plans_since(self, since: float) -> list[str]:
        plans = self.bucket.listing("list plans", "plans")
        return [digest for stamp, digest in reversed(plans) if stamp >= since]

    def recent_plans(self, keep: int) -> list[str]:
        return [
            digest
            for _, digest in list(reversed(self.bucket.listing("list plans", "plans")))[:keep]
        ]

    # -- fetching and publishing -------------------------------------------------------------

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
        url = self.bucket.url
        marker = self.bucket.marker(output_id)
        if marker is None:
            raise StoreError(f"output {output_id[:12]}… has no success marker in {url}")
        try:  # every path checked before anything is written from it
            manifest = Manifest.from_dict(marker.get("files", {}))
        except StoreError as err:
            raise StoreError(
                f"output {output_id[:12]}… in {url} has a marker that cannot be trusted "
                f"({err}); 'alamode verify --store {url}' drops it"
            ) from None
        staging = self.cache.new_staging(output_id)
        upload = self.bucket.key("outputs", output_id, str(marker.get("upload", "")))
        for name in manifest.files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            self.bucket.remote(
                "download an input",
                self.bucket.fs.get_file,
                f"{upload}/{name}",
                str(staging / name),
            )
        for link, points_to in manifest.links.items():  # links live in the marker only
            (staging / link).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(points_to, staging / link)
        if Manifest.of_directory(staging) != manifest:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(
                f"output {output_id[:12]}… in {url} does not match its marker; "
                f"'alamode verify --store {url}' drops it, then run again"
            )
        self.cache.publish(output_id, staging)
        return target

    def drop_cached(self, output_id: str) -> None:
        """Remove this machine's copy of an output, if it has one."""
        folder = self.output_path(output_id)
        if folder.exists():
            self.cache.discard_output(folder)

    def discard_output(self, folder: Path) -> None:
        self.cache.discard_output(folder)

    def publish(self, output_id: str, staging: str | Path) -> Manifest:
        """Into the cache, then every file uploaded to a fresh upload directory. The
        marker, written by ``record_successes``, is what makes it count."""
        manifest = self.cache.publish(output_id, staging)
        self._upload(output_id, manifest)
        return manifest

    def _upload(self, output_id: str, manifest: Manifest) -> None:
        upload = uuid.uuid4().hex
        source = self.output_path(output_id)
        for number, name in enumerate(manifest.files):
            if number == 1:
                pause_point("mid-upload")
            key = self.bucket.key("outputs", output_id, upload, name)
            self.bucket.put("upload an output", source / name, key)
        if not manifest.files:  # an empty output still needs its upload to be seen
            key = self.bucket.key("outputs", output_id, upload, EMPTY)
            self.bucket.parent(key)
            self.bucket.remote("upload an output", self.bucket.fs.pipe_file, key, b"")
        self._uploads[output_id] = upload

    def make_durable(self, published: Iterable[Success]) -> None:
        """Uploads are durable when the PUT returns: nothing to do."""

    def record_successes(self, finished: list[tuple[int, float, Success]]) -> list[Refusal]:
        """The last step: each marker created once. A runner that loses the race checks
        the winner's output and adopts it, dropping its own upload. An output built on an
        input revoked now (in the bucket: a revocation and no marker made since) gets no
        marker and is refused, as the cache's record refuses it; one LIST of revocations
        just before the markers (a bucket has no transaction to do it in)."""
        if not finished:
            return []
        pause_point("before-marker")
        revoked = self._revoked_inputs(finished)
        refused = refusals(finished, revoked)
        for attempt, _, success in finished:
            if attempt in refused:
                if success.worker:  # the worker marked it: the marker goes
                    self.forget(success.output)
                self._uploads.pop(success.output, None)
                # revoked in the bucket, as the cache revokes it: a later batch, and every
                # machine, must refuse what was built on it too
                self._append_revocation(refusal_record(success, refused[attempt].reason))
            elif not success.worker:  # a worker that published it created its marker too
                self._mark(success)
        refusals_made = self.cache.record_successes(finished, revoked)
        for _, _, success in finished:
            release_lease_object(self.bucket, success.output, self.root)
        return refusals_made

    def _revoked_inputs(
        self, finished: list[tuple[int, float, Success]]
    ) -> dict[str, dict[str, Any]]:
        """The batch's inputs revoked now: with a revocation, and no marker made since."""
        inputs = {o for _, _, success in finished for o in success.inputs}
        if not inputs or not (inputs & set(self.bucket.names("revoked"))):
            return {}
        now: dict[str, dict[str, Any]] = {}
        for output_id, record in self.revocations(inputs).items():
            marker = self.bucket.marker(output_id)
            if marker is None or float(marker.get("recorded", 0)) < float(record["recorded"]):
                now[output_id] = record
        return now

    def record_success(self, success: Success) -> None:
        """Record an output this machine's cache holds: uploaded first if need be."""
        if success.output not in self._uploads:
            self._upload(success.output, success.manifest)
        self._mark(success)
        self.cache.record_success(success)

    def mark(self, success: Success) -> dict[str, Any]:
        """On a worker (placement "store"): create the marker of an output this worker has
        just published, naming ``success.worker``. Returns the marker that stands: this
        one, or another worker's that was first (whose output is checked and adopted)."""
        return self._mark(success)

    def done(self, output_id: str) -> dict[str, Any] | None:
        """The marker of an output that is done (its upload matches it), else None. Unlike
        ``done_or_drop``, drops nothing and touches no database: for a worker's threads."""
        marker = self.bucket.marker(output_id)
        if marker is None or self.problem(output_id, marker, deep=False) is not None:
            return None
        return marker

    def _mark(self, success: Success) -> dict[str, Any]:
        """Create the output's marker once; the marker that stands."""
        upload = self._uploads.pop(success.output, "")
        marker = {
            "output": success.output,
            "task": success.task,
            "plan": success.plan,
            "run": success.run,
            "seconds": success.seconds,
            "engine": success.engine,
            "host": HOST,
            **({"worker": success.worker} if success.worker else {}),
            "recorded": time.time(),
            "upload": upload,
            "files": success.manifest.to_dict(),
        }
        if self.bucket.signing_key is not None:
            marker = sign(marker, self.bucket.signing_key)
        key = self.bucket.key("success", success.output)
        if success.output in self.replacing:  # run --force: the new upload replaces it
            self.bucket.remove("replace a marker", key)
        if not self.bucket.create_only(key, json.dumps(marker, indent=1).encode()):
            return self._adopt_winner(success.output, upload)
        return marker

    def _adopt_winner(self, output_id: str, our_upload: str) -> dict[str, Any]:
        winner = self.bucket.marker(output_id)
        why = NO_MARKER if winner is None else self.problem(output_id, winner, deep=False)
        if winner is None or why is not None:
            raise StoreError(
                f"output {output_id[:12]}… was published by another runner, but {why}; "
                f"'alamode verify --store {self.bucket.url}' drops it"
            )
        if winner.get("upload") != our_upload:
            self.drop_cached(output_id)  # ours may differ; later readers fetch the winner's
            key = self.bucket.key("outputs", output_id, our_upload)
            self.bucket.remove("remove a losing upload", key, True)
        return winner

    # -- removal and revocation ----------------------------------------------------------------

    def remove_output(self, output_id: str) -> int:
        marker = self.bucket.marker(output_id) or {}
        freed = _bytes(marker.get("files", {}))
        for folder in ("success", "outputs", "logs"):
            key = self.bucket.key(folder, checked_id(output_id))
            self.bucket.remove("remove an output", key, True)
        self.cache.remove_output(output_id)
        return freed

    def revoke(self, output_id: str, reason: str, who: str) -> dict[str, Any] | None:
        """The revocation is an object of its own under ``revoked/<id>/`` (appended, never
        overwritten); the marker goes, so no machine uses the output again. Its upload stays
        until ``gc``."""
        row = self.success_row(output_id)
        if row is None:
            return None
        record = revocation_record(output_id, row, reason, who)
        self._append_revocation(record)
        self.bucket.remove("remove a revoked marker", self.bucket.key("success", output_id))
        self.cache.forget(output_id)  # this machine's cache, if it knew it
        self.drop_cached(output_id)
        return record

    def _append_revocation(self, record: dict[str, Any]) -> None:
        """A revocation object of its own under ``revoked/<id>/``, never overwritten."""
        name = f"{record['recorded']:.6f}-{uuid.uuid4().hex[:8]}"
        key = self.bucket.key("revoked", record["output"], name)
        self.bucket.create_only(key, json.dumps(record).encode())

    def revoked_outputs(self) -> set[str]:
        return set(self.bucket.names("revoked"))

    def set_aside(self) -> list[dict[str, Any]]:
        """This machine's set-aside copies, and the uploads of revoked outputs that no
        marker names (a revoked output made again has a new upload and marker)."""
        bucket = self.bucket
        found = self.cache.set_aside()
        for output_id in bucket.names("revoked"):
            marker = bucket.marker(output_id) or {}
            for upload in bucket.names("outputs", output_id):
                if upload != marker.get("upload"):
                    key = bucket.key("outputs", output_id, upload)
                    size = 0
                    with contextlib.suppress(FileNotFoundError, StoreError):
                        size = int(bucket.remote("measure an upload", bucket.fs.du, key))
                    found.append(
                        {"output": output_id, "kind": "revoked", "bytes": size, "where": key}
                    )
        return found

    def remove_revoked(self) -> int:
        """Remove what ``set_aside`` lists; returns the bytes freed."""
        freed = self.cache.remove_revoked()
        for entry in self.set_aside():
            self.bucket.remove("remove a revoked upload", entry["where"], recursive=True)
            freed += int(entry["bytes"])
        return freed

    def revocations(self, output_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The latest revocation of each output: one LIST, then a read per revoked output."""
        revoked = self.bucket.names("revoked")
        wanted = revoked if output_ids is None else set(revoked) & set(output_ids)
        found: dict[str, dict[str, Any]] = {}
        for output_id in sorted(wanted):
            names = sorted(self.bucket.names("revoked", output_id))
            if names:
                record = self.bucket.read_json(self.bucket.key("revoked", output_id, names[-1]))
                if record is not None:
                    found[output_id] = record
        return found


def _bytes(files: Mapping[str, Any]) -> int:
    """The bytes a marker's manifest lists (links take none)."""
    return sum(int(entry[0]) for entry in files.values() if isinstance(entry, list))
