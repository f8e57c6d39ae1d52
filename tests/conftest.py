"""Shared fixtures: a clean environment for every test, the example Dag, CLI runner helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from a_la_mode import Dag

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The machine is shared and noisy: judge properties, never wall-clock speed.
settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-machine")

# Output IDs a-la-mode 0.1.2 computes for the README's collage example (checked against the
# original package). They are the compatibility contract: never update them to make a test pass.
GOLDEN = {
    "download_images": "6075b3951568e2f31df204a59eb92bbb17d84e6b49f1275216bc0b6deb0e223d",
    "blur": "82695e5805a9cd091e42ae94469efe77a90907c96190c793cee3c7d58dc2bbe0",
    "edge_enhance": "7a764d984ce66d23a69c87645b47fcf7be79711f40be95fb631308ee01ca2a04",
    "collage": "566a13d45eeebdefc50de118f5031278b20171ce76deb51791a4f084668e6d16",
}
GOLDEN_AFTER_BLUR_SHA = {
    **GOLDEN,
    "blur": "4df7200d1f836f7372ce01761c9cb9e0d2bc7d1abc7ee9c1abe8dc7df9a67e5e",
    "collage": "25adad1924719ff4d5d2c3f4839f0ff1b4e21537c3c358f7d10b5e5d7c9c6de5",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ALAMODE_* setting of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ALAMODE_"):
            monkeypatch.delenv(name)


def collage_dag() -> Dag:
    """The original a-la-mode example, written exactly in its style."""
    dag = Dag({"schedule": "@daily"})
    dag.task(
        "download_images", {"image": "collage", "sha": "1qe34", "command": "python dl_images.py"}
    )
    dag.task(
        "blur", {"image": "collage", "sha": "6f09d", "command": "python transform_images.py blur"}
    )
    dag.task(
        "edge_enhance",
        {"image": "collage", "sha": "1qe34", "command": "python transform_images.py edge_enhance"},
    )
    dag.task("collage", {"image": "collage", "sha": "1qe34", "command": "python collage.py"})
    for task in [dag.blur, dag.edge_enhance]:
        task.add_dep(dag.download_images)
    for task in [dag.blur, dag.edge_enhance]:
        dag.collage.add_dep(task)
    return dag


@pytest.fixture
def collage() -> Dag:
    return collage_dag()


def edited(
    data: st.DataObject,
    original: bytes,
    flips: st.SearchStrategy[int],
    inserts: list[bytes],
    first: int = 0,
) -> bytes:
    """``original`` with 1 to 4 random edits at ``first`` or after: a byte flipped (to one
    of ``flips``), deleted, inserted (one of ``inserts``), or everything from a point on cut.
    Stops early once no more than ``first`` + 1 bytes are left."""
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        at = data.draw(st.integers(first, len(raw) - 1))
        if action == "flip":
            raw[at] = data.draw(flips)
        elif action == "delete":
            del raw[at]
        elif action == "insert":
            raw[at:at] = data.draw(st.sampled_from(inserts))
        else:
            del raw[at:]
        if len(raw) <= first + 1:
            break
    return bytes(raw)


def alamode(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``alamode`` console entry point in a child process."""
    return subprocess.run(
        [sys.executable, "-c", "from a_la_mode.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        timeout=120,
        check=False,
    )


def events_of(stdout: str) -> list[dict[str, Any]]:
    """The events ``alamode run --json`` printed."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def shell(
    script: str, cwd: Path, timeout: float, argv: tuple[str, ...] = ("sh", "-c")
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as a user would type it, with this Python's scripts (``alamode``)
    first on PATH."""
    return subprocess.run(
        [*argv, script],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        timeout=timeout,
        check=False,
    )


def missing_service(what: str, how: str) -> None:
    """A test's real service is absent: skip with the reason, except under CI (which .ci/run
    sets up with every service), where absence fails the run."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} under CI: {how}")
    pytest.skip(f"{what}: {how}")


def original_package() -> Path:
    """The directory holding a-la-mode 0.1.2 (installed with pip --target), for comparisons.

    Skips where it is absent, except under CI, where .ci/run installs it and absence fails.
    """
    where = ROOT / ".ci" / "original"
    if not (where / "a_la_mode" / "task.py").exists():
        if os.environ.get("CI"):
            pytest.fail(f"a-la-mode 0.1.2 is not installed at {where} (.ci/run installs it)")
        pytest.skip(
            f"a-la-mode 0.1.2 not installed at {where}: "
            "pip install --target .ci/original a-la-mode==0.1.2"
        )
    return where
