"""alamode's own engines pass the engine contract kit (a_la_mode.testing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from a_la_mode.engines.local import LocalEngine

from a_la_mode.run.engine import Engine
from a_la_mode.testing import EngineContract

from .polling_engine import PollingShellEngine
from .test_docker_engine import IMAGE, client, daemon  # noqa: F401 - fixtures


class TestLocalEngine(EngineContract):
    def make_engine(self) -> Engine:
        return LocalEngine()


class TestInProcessEngine(EngineContract):
    """Its commands (function tasks: tests/test_functions.py)."""

    def make_engine(self) -> Engine:
        from a_la_mode.engines.inprocess import InProcessEngine

        return InProcessEngine()


class TestDockerEngine(EngineContract):
    @pytest.fixture(autouse=True)
    def _daemon(self, client: Any) -> None:  # noqa: F811 - the running daemon, or a skip
        pass

    def make_engine(self) -> Engine:
        from a_la_mode.engines.docker_engine import DockerEngine

        return DockerEngine()

    def spec(self) -> Mapping[str, Any]:
        return {"image": IMAGE}


class TestPollingEngine(EngineContract):
    """The submit-and-poll form (engine API 2), with real processes."""

    def make_engine(self) -> Engine:
        return PollingShellEngine()
