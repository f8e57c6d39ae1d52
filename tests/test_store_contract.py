"""alamode's own stores pass the store contract kit (a_la_mode.testing)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from a_la_mode.store.directory import LocalStore
from a_la_mode.testing import StoreContract

from .test_blobstore import aws_credentials, moto_server, new_bucket  # noqa: F401 - fixtures

BlobStore = pytest.importorskip("a_la_mode.engines.blobstore").BlobStore


class TestDirectoryStore(StoreContract):
    def open_store(self, machine: str, tmp_path: Path) -> LocalStore:
        return LocalStore(tmp_path / "store")  # one directory: every "machine" shares it


class TestFileStore(StoreContract):
    def open_store(self, machine: str, tmp_path: Path) -> LocalStore:
        return BlobStore(f"file://{tmp_path}/bucket", cache=str(tmp_path / f"cache-{machine}"))


class TestMemoryStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _bucket(self) -> None:
        self.url = f"memory://alamode-{uuid.uuid4().hex[:8]}/team"

    def open_store(self, machine: str, tmp_path: Path) -> LocalStore:
        return BlobStore(self.url, cache=str(tmp_path / f"cache-{machine}"))


class TestS3Store(StoreContract):
    @pytest.fixture(autouse=True)
    def _bucket(self, moto_server: str) -> None:  # noqa: F811
        self.endpoint = moto_server
        self.url = f"s3://{new_bucket(moto_server)}/team"

    def open_store(self, machine: str, tmp_path: Path) -> LocalStore:
        options = {"endpoint_url": self.endpoint}
        return BlobStore(self.url, options, cache=str(tmp_path / f"cache-{machine}"))
