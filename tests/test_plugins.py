"""Engine plugins are found through entry points and checked when they load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from a_la_mode.run import plugins
from a_la_mode.run.engine import EngineError


class GoodEngine:
    name = "good"

    def check(self) -> None: ...

    def prepare(self, tasks: Any) -> None: ...

    def run(self, job: Any) -> Any: ...

    def stop_all(self) -> None: ...


class NotAnEngine:
    name = "half"


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **targets: str) -> None:
    """Install a distribution declaring ``targets`` as engines: a real dist-info directory
    on a sys.path entry ahead of the others (what pip would write), so every engine this
    environment has is hidden behind these names only where the names clash."""
    dist_info = tmp_path / "fake_engines-1.0.dist-info"
    dist_info.mkdir()
    lines = [f"{name} = {value}" for name, value in targets.items()]
    (dist_info / "entry_points.txt").write_text(f"[{plugins.ENGINE_GROUP}]\n" + "\n".join(lines))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_an_installed_engine_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_entry_points(monkeypatch, tmp_path, good=f"{__name__}:GoodEngine")
    assert isinstance(plugins.load_engine("good"), GoodEngine)


def test_an_unknown_engine_suggests_and_lists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_entry_points(
        monkeypatch,
        tmp_path,
        good=f"{__name__}:GoodEngine",
        local="a_la_mode.engines.local:LocalEngine",
    )
    with pytest.raises(
        EngineError,
        match=r"no engine 'goo', did you mean 'good'\? "
        r"\(installed: dask, docker, good, inprocess, local, ssh\)",
    ):
        plugins.load_engine("goo")


def test_a_plugin_that_cannot_import_names_itself_and_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_entry_points(monkeypatch, tmp_path, docker="no_such_module_anywhere:DockerEngine")
    with pytest.raises(
        EngineError,
        match=r"engine 'docker' .* cannot be imported.*"
        r"pip install 'a-la-mode\[docker\]'",
    ):
        plugins.load_engine("docker")


def test_a_plugin_missing_methods_is_refused_at_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_entry_points(monkeypatch, tmp_path, half=f"{__name__}:NotAnEngine")
    with pytest.raises(
        EngineError, match="is not an engine: it lacks check, prepare, run, stop_all"
    ):
        plugins.load_engine("half")


def test_describe_reports_broken_plugins_without_failing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_entry_points(
        monkeypatch, tmp_path, good=f"{__name__}:GoodEngine", half=f"{__name__}:NotAnEngine"
    )
    states = {row["name"]: row["state"] for row in plugins.describe_engines()}
    assert states["good"] == "ok"
    assert "is not an engine" in states["half"]


def test_the_real_local_and_docker_engines_are_registered() -> None:
    assert {"local", "docker"} <= set(plugins.engine_entry_points())


class PullingEngine(GoodEngine):
    def __init__(self, pull: bool = False) -> None:
        self.pull = pull


def test_a_run_flag_reaches_the_engine_that_takes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_entry_points(monkeypatch, tmp_path, img=f"{__name__}:PullingEngine")
    engine = plugins.load_engine("img", {"pull": True})
    assert isinstance(engine, PullingEngine)
    assert engine.pull is True


def test_a_flag_the_engine_does_not_take_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_entry_points(monkeypatch, tmp_path, good=f"{__name__}:GoodEngine")
    with pytest.raises(EngineError, match="engine 'good' does not take --pull"):
        plugins.load_engine("good", {"pull": True})
