"""The bucket a blob store lives in: keys, retries, create-only writes, listings, markers."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from a_la_mode.errors import StoreError
from a_la_mode.store.records import checked_id
from a_la_mode.store.remote import fsspec_settings
from a_la_mode.store.signing import signed_by, signing_key

T = TypeVar("T")
SECRET_WORDS = ("key", "secret", "token", "password", "credential")
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)  # then give up with a clear error
S3_DEFAULTS: dict[str, Any] = {  # no stale listings between runners; faults surface in seconds
    "use_listings_cache": False,
    "config_kwargs": {"connect_timeout": 5, "read_timeout": 30, "retries": {"max_attempts": 2}},
}


class Bucket:
    """The objects under one URL, through fsspec, with every fault retried then named."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        defaults = S3_DEFAULTS if protocol in ("s3", "s3a") else {}
        self.options = dict(options or {})
        settings = fsspec_settings({**defaults, **self.options})
        try:
            self.fs, self.base = fsspec.core.url_to_fs(self.url, **settings)
        except (ImportError, ValueError) as err:
            extra = {"s3": "s3", "gs": "gcs", "az": "azure"}.get(protocol, protocol)
            raise StoreError(
                f"store {url}: {err}; for {protocol}:// install pip install 'a-la-mode[{extra}]'"
            ) from None
        self.signing_key = signing_key()  # markers are signed and checked with it, if set
        self._check_reachable()

    def shareable_options(self) -> dict[str, Any]:
        """The options given, less anything that looks like a credential."""
        return {
            name: value
            for name, value in self.options.items()
            if not any(word in name.lower() for word in SECRET_WORDS)
        }

    def key(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), *parts])

    def remote(self, what: str, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``action(*args, **kwargs)`` against the store, retrying faults with backoff."""
        for delay in (*RETRY_DELAYS, None):
            try:
                return action(*args, **kwargs)
            except (FileNotFoundError, FileExistsError):
                raise  # answers, not faults
            except Exception as err:  # the backends raise many kinds: OSError, botocore's...
                refusal = _refusal(err)
                if refusal is not None:  # asking again would get the same answer
                    raise StoreError(f"store {self.url}: cannot {what}: {refusal}") from None
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
        try:  # info, not exists: exists() says False for an endpoint that does not answer
            self.remote("reach it", self.fs.info, bucket)
        except FileNotFoundError:
            raise StoreError(
                f"store {self.url}: bucket {bucket!r} does not exist; create it first "
                f"(e.g. 'aws s3 mb s3://{bucket}')"
            ) from None

    def parent(self, key: str) -> None:
        """Object stores have no folders; a file:// store needs the key's to exist."""
        if isinstance(self.fs, LocalFileSystem):
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)

    def put(self, what: str, source: Path, key: str) -> None:
        self.parent(key)
        self.remote(what, self.fs.put_file, str(source), key)

    def remove(self, what: str, key: str, recursive: bool = False) -> None:
        """Delete ``key`` (and what is under it); already gone is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.remote(what, self.fs.rm, key, recursive=recursive)

    def create_only(self, key: str, data: bytes) -> bool:
        """Write ``key`` unless it exists (``If-None-Match: *`` on S3): True if we wrote it."""

        def write() -> None:
            self.parent(key)
            with self.fs.open(key, "xb") as handle:
                handle.write(data)

        try:
            self.remote(f"create {key}", write)
        except FileExistsError:
            return False
        return True

    def read_json(self, key: str) -> dict[str, Any] | None:
        try:
            data = self.remote(f"read {key}", self.fs.cat_file, key)
        except FileNotFoundError:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def names(self, *parts: str) -> list[str]:
        """The entries directly under a prefix: one LIST per page of results."""
        try:
            found = self.remote("list", self.fs.ls, self.key(*parts), detail=False)
        except FileNotFoundError:
            return []
        return [str(name).rstrip("/").rsplit("/", 1)[-1] for name in found]

    def listing(self, what: str, *parts: str) -> list[tuple[float, str]]:
        """(modification time, name) of the entries under a prefix, oldest first."""
        try:
            found = self.remote(what, self.fs.ls, self.key(*parts), detail=True)
        except FileNotFoundError:
            return []
        return sorted(_modified(entry) for entry in found)

    def marker(self, output_id: str) -> dict[str, Any] | None:
        """The output's success marker: None if there is none, or (with a signing key) if it
        is not signed with that key."""
        marker = self.read_json(self.key("success", checked_id(output_id)))
        if marker is not None and self.signing_key is not None:
            return marker if signed_by(marker, self.signing_key) else None
        return marker


def _refusal(err: Exception) -> str | None:
    """What a fault that retrying cannot mend says, in words (bad or partial credentials,
    access denied), or None for a fault worth retrying (a dropped connection...)."""
    kind = type(err).__name__
    if kind.endswith("CredentialsError") or kind == "NoCredentialsError":
        return (
            f"{err} ({kind}); give both key and secret (-O key=... -O secret=...), or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile"
        )
    if isinstance(err, PermissionError):
        return f"access denied ({err}); check the credentials and the bucket's policy"
    return None


def _modified(entry: Mapping[str, Any]) -> tuple[float, str]:
    """(modification time, name) of a listing entry, whatever the backend calls the time."""
    stamp = entry.get("LastModified") or entry.get("mtime") or entry.get("created") or 0
    seconds = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
    return seconds, str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
