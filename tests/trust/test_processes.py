"""Processes: a command's leftovers never write into a published output, and a runner killed
with -9 leaves no command running beside the next run's copy of it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from ..conftest import alamode
from ..test_cli_run import spec, start, wait_for


def test_a_background_child_is_ended_before_the_output_is_sealed(tmp_path: Path) -> None:
    spec(
        tmp_path,
        """
tasks:
  a:
    spec:
      command: >-
        (echo $$ > "$PWD/child"; while [ ! -f "$PWD/go" ]; do sleep 0.05; done;
        echo late > "$ALAMODE_OUTPUT/late"; echo late > "$PWD/escaped") &
        while [ ! -f "$PWD/child" ]; do sleep 0.01; done; echo now > "$ALAMODE_OUTPUT/f"
""",
    )
    assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    (tmp_path / "go").touch()  # were the child alive, it would write now
    assert not any(  # its process group was ended with the command: no process waits on go
        "escaped" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        for pid in os.listdir("/proc")
        if pid.isdigit() and Path(f"/proc/{pid}/cmdline").exists()
    )
    assert not (tmp_path / "escaped").exists()  # it was killed, not merely kept out
    verified = alamode("verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    (row,) = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    assert sorted(
        p.name for p in (tmp_path / ".alamode" / "outputs" / row["output"]).iterdir()
    ) == ["f"]


# A process whose parent died is reparented; where nothing reaps it, it stays a zombie (it
# runs and writes nothing), so "alive" below means running: a state other than Z.
LONG = """
tasks:
  slow:
    spec:
      command: >-
        for p in $(cat "$PWD/pids" 2>/dev/null); do
        state=$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null); [ -n "$state" ] && [ "$state" != Z ]
        && echo "$p"; done > "$ALAMODE_OUTPUT/alive-beside-me"; echo $$ >> "$PWD/pids"; sleep 2;
        echo done > "$ALAMODE_OUTPUT/f"
"""


def test_the_command_of_a_runner_killed_with_9_is_ended_by_the_next_run(tmp_path: Path) -> None:
    spec(tmp_path, LONG)
    runner = start(tmp_path, "run", "p.yaml")
    wait_for(tmp_path / "pids")
    runner.send_signal(signal.SIGKILL)
    runner.communicate()
    orphan = int((tmp_path / "pids").read_text().split()[0])
    os.kill(orphan, 0)  # still running: it has a session of its own
    result = alamode("run", "p.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    output = tmp_path / ".alamode" / "outputs" / row["output"]
    assert (output / "alive-beside-me").read_text() == ""  # no second copy ran beside it
    assert (output / "f").read_text() == "done\n"
    assert not Path(f"/proc/{orphan}").exists() or _zombie(orphan)


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
