"""Benchmark: file digests over 1,000 listed files (10 MB in all), against the same spec
without ``files``.

    python tests/benchmarks/bench_files.py [--files 1000] [--size 10000]

One task lists every file by name (``files: [data/f0000, ...]``); ``alamode encode`` of that
spec and of the same spec without ``files`` alternate, each a whole process of this tree.
The files are in the page cache after the first round (as a user's sources are after an
edit). Not a test: nothing here asserts a time.
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


def encode(spec: str, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*ALAMODE, "encode", spec, "-o", "-"], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10_000, help="bytes per file")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        here = Path(scratch)
        (here / "data").mkdir()
        names = [f"data/f{n:04d}" for n in range(args.files)]
        for name in names:
            (here / name).write_bytes(
                bytes(range(256)) * (args.size // 256) + b"x" * (args.size % 256)
            )
        task = {"spec": {"command": "true", "files": names}}
        (here / "with.json").write_text(json.dumps({"tasks": {"t": task}}))
        (here / "without.json").write_text(
            json.dumps({"tasks": {"t": {"spec": {"command": "true"}}}})
        )
        times: dict[str, list[float]] = {"with": [], "without": []}
        for round_ in range(args.rounds):
            for kind in ("with", "without") if round_ % 2 else ("without", "with"):
                times[kind].append(encode(f"{kind}.json", here))
    with_files, without = statistics.median(times["with"]), statistics.median(times["without"])
    total = args.files * args.size / 1e6
    print(
        f"encode, one task listing {args.files:,} files ({total:.0f} MB); medians of {args.rounds}"
    )
    print("| spec | encode | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| without files | {without:.3f} s | |")
    extra = with_files - without
    print(f"| with files | {with_files:.3f} s | {with_files / without:.2f}× (+{extra:.3f} s) |")


if __name__ == "__main__":
    main()
