"""Benchmark: the docker engine's overhead over plain ``docker run --rm``.

    python tests/benchmarks/bench_docker.py --tasks 100 --rounds 3

N independent short tasks (``touch "$ALAMODE_OUTPUT/done"``) in the busybox test image, two
at a time, side by side in one run:

- floor: ``xargs -P 2`` running ``docker run --rm --network none`` of the same command,
  each with its own bind-mounted output directory (what the engine does, minus alamode);
- alamode: ``alamode run --engine docker -j 2`` on an empty store, start-up included.

Rounds alternate the two so that drift on this shared machine hits both. Needs a daemon and
the image (``tests/docker/build-test-image``). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from a_la_mode import TaskDef, compile_plan

IMAGE = "alamode-test:busybox"
ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]
COMMAND = 'touch "$ALAMODE_OUTPUT/done"'


def floor(tasks: int, folder: Path) -> float:
    lines = []
    for i in range(tasks):
        out = folder / f"out{i}"
        out.mkdir()
        lines.append(
            f"docker run --rm --network none -v {out}:/alamode/output "
            f"-e ALAMODE_OUTPUT=/alamode/output {IMAGE} sh -c '{COMMAND}'"
        )
    started = time.perf_counter()
    subprocess.run(
        ["xargs", "-d", "\\n", "-P", "2", "-I", "{}", "sh", "-c", "{}"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    assert all((folder / f"out{i}" / "done").exists() for i in range(tasks))
    return seconds


def alamode(tasks: int, folder: Path) -> float:
    plan = compile_plan(
        {}, [TaskDef(f"t{i}", {"command": COMMAND, "image": IMAGE, "n": i}) for i in range(tasks)]
    )
    plan.save(folder / "bench.plan.bencode")
    started = time.perf_counter()
    subprocess.run(
        [*ALAMODE, "--quiet", "run", "bench.plan.bencode", "-e", "docker", "-j", "2"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"docker run --rm": [], "alamode --engine docker": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            times["docker run --rm"].append(floor(args.tasks, Path(a)))
            times["alamode --engine docker"].append(alamode(args.tasks, Path(b)))
    base = statistics.median(times["docker run --rm"])
    print(f"{args.tasks} tasks, -j 2, median of {args.rounds} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:<24} {median:7.2f} s  {median / base:5.2f}x  "
            f"({1000 * median / args.tasks:.0f} ms/task)"
        )


if __name__ == "__main__":
    main()
