"""Benchmark: diff two large plans that differ in a few tasks' specs.

    python tests/benchmarks/bench_diff.py --tasks 100000 --changed 10

Two lattice plans (``--width`` tasks per layer, each needing two of the layer before) are
written; the new one differs in ``--changed`` tasks' specs chosen with a fixed seed, so their
downstream cones change too. Each phase runs in a fresh child process:

- ``load``: ``load_plan`` of both files (full verification).
- ``load+diff``: the same, then ``diff_plans`` -- what ``alamode diff`` does.
- ``deepdiff``: DeepDiff over the two whole decoded plans (the naive approach), given
  ``--deepdiff-timeout`` seconds.

Ratios are within one run; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time


def write_plans(tasks: int, width: int, changed: int, folder: str) -> int:
    from a_la_mode import TaskDef, compile_plan

    def defs(edit: set[int]) -> list[TaskDef]:
        result = []
        for index in range(tasks):
            layer, column = divmod(index, width)
            deps = []
            if layer:
                deps = [f"t{layer - 1}_{column}", f"t{layer - 1}_{(column + 1) % width}"]
            spec = {"command": f"step {index}", "sha": "v2" if index in edit else "v1"}
            result.append(TaskDef(f"t{layer}_{column}", spec, deps))
        return result

    edit = set(random.Random(42).sample(range(tasks), changed))
    compile_plan({}, defs(set())).save(os.path.join(folder, "old.bencode"))
    new = compile_plan({}, defs(edit))
    new.save(os.path.join(folder, "new.bencode"))
    from a_la_mode import diff_plans, load_plan

    return len(diff_plans(load_plan(os.path.join(folder, "old.bencode")), new).changed)


def phase(name: str, folder: str) -> dict[str, float]:
    """``ours``: load both plans, then diff. ``deepdiff``: decode both, then DeepDiff."""
    import bencodepy
    from deepdiff import DeepDiff

    from a_la_mode import diff_plans, load_plan

    old_path, new_path = os.path.join(folder, "old.bencode"), os.path.join(folder, "new.bencode")
    started = time.perf_counter()
    if name == "deepdiff":
        decoder = bencodepy.Bencode(encoding="utf-8")
        with open(old_path, "rb") as old, open(new_path, "rb") as new:
            old_dict, new_dict = decoder.decode(old.read()), decoder.decode(new.read())
        loaded = time.perf_counter()
        DeepDiff(old_dict, new_dict)
    else:
        old_plan, new_plan = load_plan(old_path), load_plan(new_path)
        loaded = time.perf_counter()
        diff_plans(old_plan, new_plan)
    return {"load": loaded - started, "diff": time.perf_counter() - loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--deepdiff-timeout", type=float, default=600)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.folder)))
        return
    with tempfile.TemporaryDirectory() as folder:
        moved = write_plans(args.tasks, args.width, args.changed, folder)
        results: dict[str, dict[str, float] | None] = {}
        for name in ("ours", "deepdiff"):
            timeout = args.deepdiff_timeout if name == "deepdiff" else None
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--phase", name, "--folder", folder],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=True,
                )
                results[name] = json.loads(done.stdout)
            except subprocess.TimeoutExpired:
                results[name] = None
    ours, deep = results["ours"], results["deepdiff"]
    assert ours is not None
    print(
        f"{args.tasks:,}-task lattice plans (width {args.width}), {args.changed} specs "
        f"edited, {moved:,} output IDs moved"
    )
    print("| step | seconds | ratio |")
    print("| --- | ---: | ---: |")
    total = ours["load"] + ours["diff"]
    print(f"| load_plan both (full verification) | {ours['load']:.2f} | |")
    print(f"| diff_plans | {ours['diff']:.3f} | |")
    print(
        f"| load both + diff (what `alamode diff` does) | {total:.2f} | "
        f"{total / ours['load']:.2f}× load |"
    )
    if deep is None:
        print(f"| bencodepy decode + DeepDiff | > {args.deepdiff_timeout:.0f} (stopped) | |")
    else:
        print(f"| bencodepy decode both | {deep['load']:.2f} | |")
        print(
            f"| DeepDiff of the decoded plans | {deep['diff']:.2f} | "
            f"diff_plans is {deep['diff'] / ours['diff']:.0f}× faster |"
        )


if __name__ == "__main__":
    main()
