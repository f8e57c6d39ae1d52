"""Blob stores: the bucket is the truth, and nothing it holds is trusted blindly."""

from __future__ import annotations

from a_la_mode.queries import task_states

from ..test_blobstore import (  # noqa: F401 - fixtures
    Where,
    aws_credentials,
    moto_server,
    pipeline,
    run,
    where,
)


def test_a_marker_and_upload_lost_in_the_bucket_are_made_again(where: Where) -> None:  # noqa: F811
    plan = pipeline()
    machine = where.machine("a")
    run(plan, machine)
    top = plan.output("top")
    machine.fs.rm(machine._key("success", top))  # expired, or gc'd from elsewhere
    machine.fs.rm(machine._key("outputs", top), recursive=True)
    again = where.machine("a")  # the same machine: its cache remembers the success
    assert {s.task: s.label for s in task_states(plan, again, None)}["top"] == "would run"
    report, kinds = run(plan, again)
    assert report.scheduler.succeeded
    assert kinds["start"] == ["top"] and "adopt" not in kinds
    assert again.marker(top) is not None  # published and marked anew
    assert again.check_output(top, deep=True) is None
