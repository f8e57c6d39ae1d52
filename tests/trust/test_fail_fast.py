"""Without --keep-going, nothing new starts once a task has failed (docs/running.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import alamode, events_of
from ..test_cli_run import spec

MANY_READY = "tasks:\n  bad: {spec: {command: 'sleep 0.3; exit 3'}}\n" + "".join(
    f"  t{i}: {{spec: {{command: 'sleep 0.05; echo {i} > $ALAMODE_OUTPUT/f'}}}}\n"
    for i in range(40)
)


@pytest.mark.parametrize("engine", ["local", "inprocess"])
def test_no_task_starts_after_the_first_failure(tmp_path: Path, engine: str) -> None:
    spec(tmp_path, MANY_READY)
    for _ in range(3):  # the race it guards against was seen 3 times in 3
        result = alamode("run", "p.yaml", "-j", "2", "--engine", engine, "--json", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        events = [e for e in events_of(result.stdout) if e["event"] in ("start", "fail")]
        failed_at = next(n for n, e in enumerate(events) if e["event"] == "fail")
        assert events[failed_at]["task"] == "bad"
        late = [e["task"] for e in events[failed_at:] if e["event"] == "start"]
        assert late == [], f"started after bad failed: {late}"


def test_a_retry_is_not_the_failure_that_stops_the_run(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  flaky:
    spec:
      retries: 1
      command: >-
        if [ -f "$PWD/once" ]; then touch $ALAMODE_OUTPUT/f;
        else touch "$PWD/once"; exit 1; fi
  after: {deps: [flaky], spec: {command: 'touch $ALAMODE_OUTPUT/f'}}
""",
    )
    result = alamode("run", "p.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    kinds = [(e["event"], e.get("task")) for e in events_of(result.stdout)]
    assert ("retry", "flaky") in kinds and ("succeed", "after") in kinds
