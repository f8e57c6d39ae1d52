"""Blob stores: the bucket is the truth, and nothing it holds is trusted blindly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a_la_mode.review.queries import task_states, verify

from ..conftest import alamode
from ..test_blobstore import (  # noqa: F401 - fixtures
    Where,
    aws_credentials,
    moto_server,
    pipeline,
    run,
    where,
)
from ..test_cli_run import spec


def test_a_marker_and_upload_lost_in_the_bucket_are_made_again(where: Where) -> None:  # noqa: F811
    plan = pipeline()
    machine = where.machine("a")
    run(plan, machine)
    top = plan.output("top")
    machine.bucket.fs.rm(machine.bucket.key("success", top))  # expired, or gc'd from elsewhere
    machine.bucket.fs.rm(machine.bucket.key("outputs", top), recursive=True)
    again = where.machine("a")  # the same machine: its cache remembers the success
    assert {s.task: s.label for s in task_states(plan, again, None)}["top"] == "would run"
    report, kinds = run(plan, again)
    assert report.scheduler.succeeded
    assert kinds["start"] == ["top"] and "adopt" not in kinds
    assert again.bucket.marker(top) is not None  # published and marked anew
    assert again.outputs.check_output(top, deep=True) is None


def test_a_plan_replaced_in_the_bucket_is_never_run(tmp_path: Path) -> None:
    bucket = f"file://{tmp_path}/bucket"
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'echo safe'}}\n", "good.yaml")
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'touch \"$PWD/pwned\"'}}\n", "evil.yaml")
    good = json.loads(alamode("push", "good.yaml", "-s", bucket, "--json", cwd=tmp_path).stdout)
    evil = json.loads(alamode("push", "evil.yaml", "-s", bucket, "--json", cwd=tmp_path).stdout)
    good_file = Path(good["url"].removeprefix("file://"))
    good_file.write_bytes(Path(evil["url"].removeprefix("file://")).read_bytes())
    result = alamode("run", good["url"], cwd=tmp_path, env={"ALAMODE_CACHE": str(tmp_path / "c")})
    assert result.returncode == 2
    assert "as its name says; it was replaced" in result.stderr
    assert not (tmp_path / "pwned").exists()


def test_a_plan_replaced_in_a_directory_store_is_not_trusted(tmp_path: Path) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'echo a > \"$ALAMODE_OUTPUT/f\"'}}\n")
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    (kept,) = (tmp_path / ".alamode" / "plans").iterdir()
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'echo b'}}\n", "other.yaml")
    assert alamode("encode", "other.yaml", "-o", str(kept), cwd=tmp_path).returncode == 0
    tree = alamode("provenance", "a", "--json", cwd=tmp_path)
    assert json.loads(tree.stdout)["spec"] is None  # the replaced plan is not shown as its


def test_with_a_signing_key_a_forged_marker_is_refused(
    where: Where,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = pipeline()
    forger = where.machine("forger")  # no key: writes markers anyone could write
    run(plan, forger)
    key = tmp_path / "key"
    key.write_text("a shared secret of the team's machines\n")
    monkeypatch.setenv("ALAMODE_SIGNING_KEY_FILE", str(key))
    reader = where.machine("reader")
    assert reader.outputs.successes([plan.output(n) for n in plan.tasks]) == set()
    seen = {s.task: s for s in task_states(plan, reader, None)}
    assert "its marker is not signed with this store's key" in seen["top"].reason
    assert {s.label for s in seen.values()} <= {"output missing", "blocked"}
    bad = {(task, why) for _, task, why in verify(reader, forget=False)}
    assert ("top", "its marker is not signed with this store's key") in bad
    report, kinds = run(plan, reader)  # the forged markers are replaced by signed ones
    assert report.scheduler.succeeded and sorted(kinds["start"]) == ["copy", "join", "top"]
    assert reader.bucket.marker(plan.output("top"))["signature"].startswith("hmac-sha256:")
    assert verify(reader, forget=False) == []
    forged = reader.bucket.read_json(reader.bucket.key("success", plan.output("join")))
    forged["seconds"] = 99.0  # one field changed: the signature no longer matches
    reader.bucket.fs.rm(reader.bucket.key("success", plan.output("join")))
    reader.bucket.fs.pipe_file(
        reader.bucket.key("success", plan.output("join")), json.dumps(forged).encode()
    )
    assert plan.output("join") not in reader.outputs.successes([plan.output("join")])


def test_a_signing_key_that_cannot_be_read_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'true'}}\n")
    env = {"ALAMODE_SIGNING_KEY_FILE": str(tmp_path / "missing")}
    result = alamode("run", "p.yaml", "-s", f"file://{tmp_path}/b", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("cannot read the key (No such file or directory)")


def test_each_store_fault_names_its_real_cause(
    moto_server: str,  # noqa: F811
    aws_credentials: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    from tests.service import free_port

    from ..test_blobstore import new_bucket

    spec(tmp_path, "tasks:\n  a: {spec: {command: 'echo a > $ALAMODE_OUTPUT/f'}}\n")
    bucket = new_bucket(moto_server)
    nothing = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = alamode(
        "-O", f"endpoint_url={nothing}", "run", "p.yaml", "-s", f"s3://{bucket}/x", cwd=tmp_path
    )
    assert unreachable.returncode == 2
    assert "failed to reach it" in unreachable.stderr and "Could not connect" in unreachable.stderr
    assert "does not exist" not in unreachable.stderr
    partial = alamode(
        "-O", f"endpoint_url={moto_server}", "-O", "secret=X", "run", "p.yaml", "-s", f"s3://{bucket}/x",
        cwd=tmp_path, env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
    )  # fmt: skip
    assert partial.returncode == 2
    assert "Partial credentials" in partial.stderr and "give both key and secret" in partial.stderr
    missing = alamode(
        "-O",
        f"endpoint_url={moto_server}",
        "run",
        "p.yaml",
        "-s",
        "s3://no-such-bucket/x",
        cwd=tmp_path,
    )
    assert "bucket 'no-such-bucket' does not exist" in missing.stderr


def test_an_input_that_cannot_be_fetched_says_so(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  a: {spec: {command: 'echo a > $ALAMODE_OUTPUT/f'}}
  b: {deps: [a], spec: {command: 'cat $ALAMODE_INPUT_A/f > $ALAMODE_OUTPUT/f'}}
""",
    )
    store = ["-s", f"file://{tmp_path}/bucket"]
    assert alamode("run", "p.yaml", "--target", "a", *store, cwd=tmp_path).returncode == 0
    [upload] = list((tmp_path / "bucket" / "outputs").glob("*/*/f"))
    upload.write_text("tampered\n")  # same size: the marker's listing still matches
    other = {"ALAMODE_CACHE": str(tmp_path / "other")}  # a machine with no cached copy
    result = alamode("run", "p.yaml", *store, cwd=tmp_path, env=other)
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert "could not fetch its input a:" in said and "could not publish" not in said
