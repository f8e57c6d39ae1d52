"""Conformance kits for plugin authors: the behaviour every store and every engine must
have, as tests (``StoreContract``, ``EngineContract``).

A store plugin's own test module subclasses ``StoreContract`` and gives ``open_store``::

    from a_la_mode.testing import StoreContract

    class TestMyStore(StoreContract):
        def open_store(self, machine: str, tmp_path: Path) -> Store:
            return MyStore("my://bucket/prefix", cache=str(tmp_path / machine))

pytest then runs every test of the contract against it. alamode's own stores pass it
(tests/test_store_contract.py): a directory, ``file://``, ``memory://`` and S3; and so do
the local and docker engines (tests/test_engine_contract.py).
"""

from .engines import EngineContract
from .stores import StoreContract

__all__ = ["EngineContract", "StoreContract"]
