"""Benchmark: loading a plan with bencode.py (the default) and with the accelerated bencode
packages that could stand in for it as an optional extra.

    python tests/benchmarks/bench_codec.py --tasks 100000

The plan is a lattice (``--width`` tasks per layer). Each contender loads it end to end
with ``load_plan`` (strict decode, canonical check, re-hash, inputs, toposort) in a fresh
child process, with ``a_la_mode.compile.canonical``'s encode and decode swapped for the
package's own: ``bencode2`` (encode and decode; its decoder returns bytes, so its text is
converted back to ``str``) and ``fastbencode`` (``bdecode_utf8`` to decode, bencode2 to
encode: its own encoder takes bytes keys only). A contender that is not installed is left
out. Rounds alternate the contenders; the ratio is bencode.py's median over theirs. The
issue that asked for this allows an accelerated package only from 2× faster end to end.
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
from typing import Any

CONTENDERS = ("bencode.py", "bencode2", "fastbencode")


def _text(value: Any) -> Any:
    """bytes -> str, all the way down (what bencode.py's utf-8 mode gives)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_text(item) for item in value]
    if isinstance(value, dict):
        return {key.decode(): _text(item) for key, item in value.items()}
    return value


def swap_codec(contender: str) -> None:
    """Make ``a_la_mode``'s plan reader use ``contender``'s encode and decode."""
    from a_la_mode.compile import canonical, planfile

    if contender == "bencode.py":
        return
    import bencode2

    def encode(value: Any) -> bytes:
        return bytes(bencode2.bencode(value))

    if contender == "bencode2":

        def decode(data: bytes) -> Any:
            return _text(bencode2.bdecode(data))
    else:
        import fastbencode

        def decode(data: bytes) -> Any:
            return fastbencode.bdecode_utf8(data)

    canonical.encode = encode  # type: ignore[assignment]
    canonical.decode = decode  # type: ignore[assignment]
    planfile.encode = encode  # type: ignore[attr-defined]
    planfile.decode = decode  # type: ignore[attr-defined]


def load(contender: str, path: str) -> None:
    """One timed load, in this (child) process; prints the seconds as JSON."""
    swap_codec(contender)
    from a_la_mode import load_plan

    started = time.perf_counter()
    plan = load_plan(path)
    print(json.dumps({"seconds": time.perf_counter() - started, "tasks": len(plan.tasks)}))


def available(contender: str) -> bool:
    module = {"bencode.py": "bencodepy"}.get(contender, contender)
    probe = f"import {module}" + ("; import bencode2" if contender == "fastbencode" else "")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", nargs=2, metavar=("CONTENDER", "PLAN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(*args.load)
        return
    from a_la_mode import TaskDef, compile_plan

    contenders = [c for c in CONTENDERS if available(c)]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "lattice.plan.bencode"
        defs = []
        for index in range(args.tasks):
            layer, column = divmod(index, args.width)
            deps = []
            if layer:
                deps = [f"t{layer - 1}_{column}", f"t{layer - 1}_{(column + 1) % args.width}"]
            spec = {"image": "busybox", "command": 'touch "$ALAMODE_OUTPUT/done"', "n": index}
            defs.append(TaskDef(f"t{layer}_{column}", spec, deps))
        compile_plan({}, defs).save(path)
        size = path.stat().st_size
        times: dict[str, list[float]] = {c: [] for c in contenders}
        for round_ in range(args.rounds):
            for contender in contenders if round_ % 2 == 0 else contenders[::-1]:
                done = subprocess.run(
                    [sys.executable, __file__, "--load", contender, str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times[contender].append(json.loads(done.stdout)["seconds"])
    base = statistics.median(times["bencode.py"])
    print(f"load_plan, {args.tasks:,} tasks ({size / 1e6:.0f} MB); medians of {args.rounds}")
    print("| codec | load | bencode.py / it |")
    print("| --- | ---: | ---: |")
    for contender, seconds in times.items():
        median = statistics.median(seconds)
        print(f"| {contender} | {median:.2f} s | {base / median:.2f}× |")


if __name__ == "__main__":
    main()
