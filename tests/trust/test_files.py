"""Files that are not plain files: one policy (a_la_mode/store/manifest.py) on every store."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from a_la_mode.errors import StoreError
from a_la_mode.store.manifest import Manifest

from ..conftest import alamode
from ..test_blobstore import (  # noqa: F401 - fixtures
    Where,
    aws_credentials,
    moto_server,
    run,
    where,
)
from ..test_cli_run import spec


def outputs(tmp_path: Path) -> dict[str, Path]:
    status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    return {row["task"]: tmp_path / ".alamode" / "outputs" / row["output"] for row in status}


def test_links_inside_the_output_are_kept_and_recorded(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  a:
    spec:
      command: >-
        mkdir "$ALAMODE_OUTPUT/d" && echo hi > "$ALAMODE_OUTPUT/d/f"
        && ln -s d/f "$ALAMODE_OUTPUT/link" && ln -s nowhere "$ALAMODE_OUTPUT/dangling"
""",
    )
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    status = alamode("status", "p.yaml", "--json", cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)[0]["label"] == "done"
    assert alamode("verify", cwd=tmp_path).returncode == 0
    folder = outputs(tmp_path)["a"]
    assert os.readlink(folder / "link") == "d/f" and (folder / "link").read_text() == "hi\n"
    # changing where a link points is a change verify sees (root can write read-only folders)
    if os.geteuid() == 0:
        (folder / "link").unlink()
        (folder / "link").symlink_to("nowhere")
        verified = alamode("verify", cwd=tmp_path)
        assert verified.returncode == 1
        assert "its link link was changed" in verified.stdout


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (
            'ln -s /etc/passwd "$ALAMODE_OUTPUT/passwd"',
            "symbolic link leaving the output: passwd -> /etc/passwd",
        ),
        (
            'mkdir "$ALAMODE_OUTPUT/d" && ln -s ../../x "$ALAMODE_OUTPUT/d/up"',
            "symbolic link leaving the output: d/up -> ../../x",
        ),
        ('mkfifo "$ALAMODE_OUTPUT/pipe"', "holds a FIFO, pipe"),
    ],
)
def test_links_leaving_the_output_and_special_files_fail_the_task(
    tmp_path: Path, command: str, reason: str
) -> None:
    spec(tmp_path, f"tasks:\n  a: {{spec: {{command: '{command}'}}}}\n")
    result = alamode("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert reason in result.stdout  # the FAILED line
    assert reason in alamode("log", "a", cwd=tmp_path).stdout
    (row,) = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    assert row["label"] == "failed last time" and reason in row["reason"]
    assert list((tmp_path / ".alamode" / "outputs").iterdir()) == []


def test_publishing_never_changes_a_file_outside_the_output(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    outside.chmod(0o644)
    spec(
        tmp_path,
        """
tasks:
  up: {spec: {command: 'echo up > "$ALAMODE_OUTPUT/u"'}}
  a:
    deps: [up]
    spec:
      command: >-
        ln "$PWD/outside.txt" "$ALAMODE_OUTPUT/linked"
        && ln "$ALAMODE_INPUT_UP/u" "$ALAMODE_OUTPUT/u"
""",
    )
    result = alamode("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # still the user's, writable
    folder = outputs(tmp_path)
    assert (folder["a"] / "linked").read_text() == "mine\n"
    assert (folder["a"] / "linked").stat().st_ino != outside.stat().st_ino  # a copy
    # removing the downstream output leaves the upstream one read-only
    upstream = folder["up"] / "u"
    spec(tmp_path, "tasks:\n  up: {spec: {command: 'echo up > \"$ALAMODE_OUTPUT/u\"'}}\n")
    assert alamode("gc", "--keep", "1", "--yes", cwd=tmp_path).returncode == 0
    assert stat.S_IMODE(upstream.stat().st_mode) & 0o222 == 0


def test_links_travel_through_a_blob_store(where: Where) -> None:  # noqa: F811
    from a_la_mode import TaskDef, compile_plan

    plan = compile_plan(
        {},
        [
            TaskDef("a", {"command": 'echo hi > "$ALAMODE_OUTPUT/f"; ln -s f "$ALAMODE_OUTPUT/l"'}),
            TaskDef("b", {"command": 'cat "$ALAMODE_INPUT_A/l" > "$ALAMODE_OUTPUT/g"'}, ["a"]),
        ],
    )
    first = where.machine("one")
    report, _ = run(plan, first)
    assert report.scheduler.succeeded
    marker = first.bucket.marker(plan.output("a"))
    assert marker["files"]["l"] == {"link": "f"}
    second = where.machine("two")
    fetched = second.outputs.fetch(plan.output("a"))
    assert os.readlink(fetched / "l") == "f" and (fetched / "l").read_text() == "hi\n"


@pytest.mark.parametrize(
    "path", ["../../../../ESCAPED", "/tmp/ESCAPED", "a/../../ESCAPED", "a\0b", "./x", "a//b"]
)
def test_a_forged_marker_path_is_refused_before_anything_is_written(
    where: Where,  # noqa: F811
    path: str,
    tmp_path: Path,
) -> None:
    from a_la_mode import TaskDef, compile_plan

    plan = compile_plan({}, [TaskDef("a", {"command": 'echo hi > "$ALAMODE_OUTPUT/f"'})])
    machine = where.machine("one")
    run(plan, machine)
    output = plan.output("a")
    key = machine.bucket.key("success", output)
    marker = json.loads(machine.bucket.fs.cat_file(key))
    marker["files"] = {path: marker["files"]["f"]}
    machine.bucket.fs.rm(key)
    machine.bucket.fs.pipe_file(key, json.dumps(marker).encode())
    other = where.machine("two")
    with pytest.raises(StoreError, match="has a marker that cannot be trusted"):
        other.outputs.fetch(output)
    assert not list(tmp_path.rglob("ESCAPED"))
    assert other.outputs.check_output(output, deep=False).startswith("its marker cannot be trusted")


def test_manifests_refuse_paths_and_links_outside_the_output() -> None:
    with pytest.raises(StoreError, match="leaves its output"):
        Manifest.from_dict({"l": {"link": "../x"}})
    with pytest.raises(StoreError, match="leaves its output"):
        Manifest.from_dict({"l": {"link": "/etc/passwd"}})
    with pytest.raises(StoreError, match="is malformed"):
        Manifest.from_dict({"f": [-1, "x"]})
    assert Manifest.from_dict({"d/l": {"link": "../f"}, "f": [1, "ab"]}).links == {"d/l": "../f"}
