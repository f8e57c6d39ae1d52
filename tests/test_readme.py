"""The README's promises: its Python examples run, and CI runs its test command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .conftest import GOLDEN_AFTER_BLUR_SHA, ROOT, shell

README = (ROOT / "README.md").read_text()


def test_the_python_examples_run_and_give_the_pinned_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    plan = namespace["plan"]
    assert {name: plan.output(name) for name in plan.tasks} == GOLDEN_AFTER_BLUR_SHA  # type: ignore[attr-defined]
    diamond = namespace["diamond"].compile()  # type: ignore[attr-defined]
    assert sorted(diamond.inputs("report")) == ["fetch-users", "ingest.clean"]
    assert sorted(diamond.inputs("user-details")) == ["user-orders", "user-profiles"]
    printed = capsys.readouterr().out
    assert "changed itself: command: 'fetch.sh' → 'fetch.sh --all'\n" in printed


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"^(python3 -m pip install .*pytest)$", README, re.M)
    assert len(commands) == 1
    assert commands[0] in (ROOT / ".ci" / "run").read_text()


def test_the_quick_start_main_job_runs_and_its_second_run_skips(tmp_path: Path) -> None:
    (line,) = re.findall(r"^pip install -e \. && (alamode run .*)$", README, re.M)
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    done = shell(line, tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 tasks: 0 already done, 4 succeeded" in done.stderr
    assert "4 tasks: 4 already done, 0 succeeded" in done.stderr
    assert done.stdout.count("done") >= 4 and "would run" not in done.stdout
