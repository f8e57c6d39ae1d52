"""Benchmark: --eval-param over a year of a 20-task daily flow (7,300 instances).

    python tests/benchmarks/bench_params.py [--days 365] [--tasks 20]

A chain of ``--tasks`` trivial tasks, each using ``${day}``, run for ``days_range(1 - days,
0)``. Measured, each as a whole ``alamode`` process of this tree:

- ``encode``: compiling the year into a plan, and the plan's size;
- ``first run``: running all of it (``-j 2``);
- ``next day``: the same expression with ``--today`` one day later; how many tasks ran;
- ``skip check``: ``run --dry-run`` of the next day's plan once everything is done (deciding
  that nothing is left), next to ``run`` doing nothing on it (the no-op run): rounds
  alternate, medians of ``--rounds``.

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]


def flow(tasks: int) -> str:
    lines = ["params:", "  day: {}", "tasks:"]
    for n in range(tasks):
        deps = f"deps: [t{n - 1}], " if n else ""
        lines.append(
            f"  t{n}: {{{deps}spec: {{command: 'echo ${{day}} > \"$ALAMODE_OUTPUT/d\"'}}}}"
        )
    return "\n".join(lines) + "\n"


def alamode(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([*ALAMODE, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"alamode {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    year = f"day=days_range({1 - args.days}, 0)"
    with tempfile.TemporaryDirectory() as scratch:
        here = Path(scratch)
        (here / "daily.yaml").write_text(flow(args.tasks))
        today, tomorrow = ["--today", "2026-12-03"], ["--today", "2026-12-04"]
        encode, _ = alamode("encode", "daily.yaml", "-E", year, *today, "-o", "y.plan", cwd=here)
        size = (here / "y.plan").stat().st_size
        first, _ = alamode("run", "daily.yaml", "-E", year, *today, "-j", "2", "-q", cwd=here)
        next_day, done = alamode(
            "run", "daily.yaml", "-E", year, *tomorrow, "-j", "2", "--json", cwd=here
        )
        events = [json.loads(line) for line in done.stdout.splitlines()]
        ran = sorted(e["task"] for e in events if e["event"] == "succeed")
        check: list[float] = []
        noop: list[float] = []
        for round_ in range(args.rounds):
            pair = [("check", "--dry-run"), ("noop", "-q")]
            for kind, flag in pair if round_ % 2 == 0 else pair[::-1]:
                seconds, _ = alamode("run", "daily.yaml", "-E", year, *tomorrow, flag, cwd=here)
                (check if kind == "check" else noop).append(seconds)
    instances = args.days * args.tasks
    print(f"--eval-param over {args.days} days of a {args.tasks}-task flow ({instances:,} tasks)")
    print("| step | seconds | note |")
    print("| --- | ---: | --- |")
    print(f"| encode | {encode:.2f} | plan {size / 1e6:.1f} MB |")
    print(f"| first run, -j 2 | {first:.2f} | |")
    print(f"| next day's run | {next_day:.2f} | ran {len(ran)} tasks, all of day 2026-12-04 "
          f"({all('2026-12-04' in name for name in ran)}) |")  # fmt: skip
    ratio = statistics.median(check) / statistics.median(noop)
    print(
        f"| skip check (run --dry-run) | {statistics.median(check):.2f} | "
        f"**{ratio:.2f}×** the no-op run ({statistics.median(noop):.2f} s) |"
    )


if __name__ == "__main__":
    main()
