"""pipelayer-style directories: a template, and a folder per instance (examples/pipelayer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import ROOT, alamode


@pytest.fixture
def pipelines(tmp_path: Path) -> Path:
    copy = tmp_path / "pipelines"
    shutil.copytree(ROOT / "examples" / "pipelayer", copy)
    return copy


def labels(instance: Path) -> dict[str, str]:
    status = alamode("status", str(instance), "--json", cwd=instance.parent.parent)
    assert status.returncode == 0, status.stderr
    return {row["task"]: row["label"] for row in json.loads(status.stdout)}


def test_each_instance_runs_and_editing_one_reruns_only_it(pipelines: Path) -> None:
    checked = alamode("validate", str(pipelines), cwd=pipelines.parent)
    assert checked.returncode == 0, checked.stderr
    assert "daily-eu: 2 tasks" in checked.stderr and "daily-us: 2 tasks" in checked.stderr
    for region in ("eu", "us"):
        run = alamode("run", str(pipelines / f"daily-{region}"), cwd=pipelines.parent)
        assert run.returncode == 0, run.stderr
    counted = alamode("cat", str(pipelines / "daily-us"), "load", cwd=pipelines.parent)
    assert counted.stdout == "3\nus\n"
    with (pipelines / "daily-us" / "tasks" / "load.sh").open("a") as script:
        script.write('echo edited >> "$ALAMODE_OUTPUT/count"\n')
    assert set(labels(pipelines / "daily-eu").values()) == {"done"}
    assert labels(pipelines / "daily-us") == {"extract": "would run", "load": "blocked"}


def test_validate_reports_every_broken_instance_at_once(pipelines: Path) -> None:
    (pipelines / "daily-eu" / "values.json").write_text('{"name": "daily-eu", "value": {}}')
    (pipelines / "daily-us" / "values.json").write_text(
        '{"name": "daily-us", "values": {"region": "asia"}}'
    )
    checked = alamode("validate", str(pipelines), cwd=pipelines.parent)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    errors = [line for line in checked.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert errors[0].startswith("error: instance daily-eu: values.json: unknown field 'value'")
    assert errors[1].startswith("error: instance daily-us: pipeline_definition.yaml:")
    assert "parameter 'region' is one of eu, us" in errors[1]


def test_push_uploads_a_plan_per_instance(pipelines: Path, tmp_path: Path) -> None:
    store = tmp_path / "shared"
    pushed = alamode("push", str(pipelines), "--store", str(store), "--json", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    plans = [json.loads(line) for line in pushed.stdout.splitlines()]
    assert len(plans) == 2 and all(p["tasks"] == 2 for p in plans)
    assert len(list((store / "plans").glob("*.bencode"))) == 2
    (pipelines / "daily-us" / "run").unlink()
    (pipelines / "daily-us" / "values.json").write_text("not json")
    refused = alamode("push", str(pipelines), "--store", str(tmp_path / "other"), cwd=tmp_path)
    assert refused.returncode == 2 and "nothing was pushed" in refused.stderr
    assert not (tmp_path / "other" / "plans").exists() or not list(
        (tmp_path / "other" / "plans").iterdir()
    )
