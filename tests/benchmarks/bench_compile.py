"""Benchmark: compile and load a lattice DAG, against the bare minimum and a-la-mode 0.1.2.

    python tests/benchmarks/bench_compile.py --tasks 1000000 [--original /path/to/0.1.2]

Each phase runs in a fresh child process, so peak RSS is per phase and one phase's garbage
does not slow the next. Phases, all on the same generated lattice (``--width`` tasks per
layer, each depending on two tasks of the layer before):

- ``floor-encode``: build each entry (spec + inputs) in a precomputed topological order,
  ``bencodepy.encode`` it and sha256 it. The bare minimum any encoder must do.
- ``alamode-encode``: ``Dag.compile()`` then ``Plan.save()``: validation, ordering, hashing,
  writing the file.
- ``floor-load``: ``bencodepy`` decode of the plan file, then re-hash every task the bare way.
- ``alamode-load``: ``load_plan``: strict decode, canonical check, re-hash, inputs, toposort.
- ``original-encode``: a-la-mode 0.1.2's ``Dag.encode()`` (recursive) where it finishes
  within ``--original-timeout`` seconds; only with ``--original``.

Ratios are computed within one run (this machine is shared and noisy). Not a test: nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

SPEC_TEMPLATE = {"image": "busybox", "command": 'touch "$ALAMODE_OUTPUT/done"'}


def lattice(tasks: int, width: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(name, spec, deps) in topological order; task i of layer L needs i and i+1 of L-1."""
    result = []
    for index in range(tasks):
        layer, column = divmod(index, width)
        name = f"t{layer}_{column}"
        deps: list[str] = []
        if layer:
            deps = [f"t{layer - 1}_{column}", f"t{layer - 1}_{(column + 1) % width}"]
        result.append((name, {**SPEC_TEMPLATE, "n": index}, deps))
    return result


def chain(tasks: int) -> list[tuple[str, dict[str, Any], list[str]]]:
    return [(f"t{i}", {**SPEC_TEMPLATE, "n": i}, [f"t{i - 1}"] if i else []) for i in range(tasks)]


def build(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], list[str]]]:
    if args.shape == "chain":
        return chain(args.tasks)
    return lattice(args.tasks, args.width)


def phase(args: argparse.Namespace) -> dict[str, float]:
    """Run one phase in this process; return its seconds and peak RSS."""
    import bencodepy  # imports happen before the clock starts, for every phase

    from a_la_mode import Dag, load_plan

    tasks = build(args)
    started = time.perf_counter()
    if args.phase == "floor-encode":
        outputs: dict[str, str] = {}
        for name, spec, deps in tasks:
            entry = {**spec, "inputs": {dep: outputs[dep] for dep in deps}}
            outputs[name] = hashlib.sha256(bencodepy.encode(entry)).hexdigest()
    elif args.phase == "alamode-encode":
        dag = Dag({"bench": "lattice"})
        made = {}
        for name, spec, deps in tasks:
            made[name] = dag.task(name, spec).add_dep(*(made[dep] for dep in deps))
        started = time.perf_counter()  # the DSL objects are the input, as in the floor
        dag.compile().save(args.plan)
    elif args.phase == "floor-load":
        with open(args.plan, "rb") as handle:
            data = handle.read()
        plan = bencodepy.Bencode(encoding="utf-8").decode(data)
        for entry in plan["tasks"].values():
            hashed = {k: v for k, v in entry.items() if k != "output"}
            hashlib.sha256(bencodepy.encode(hashed)).hexdigest()
    elif args.phase == "alamode-load":
        load_plan(args.plan)
    elif args.phase == "original-encode":
        for module in [m for m in sys.modules if m.split(".")[0] == "a_la_mode"]:
            del sys.modules[module]  # make room for the 0.1.2 package of the same name
        sys.path.insert(0, args.original)
        sys.setrecursionlimit(1_000_000)
        from a_la_mode import Dag as OriginalDag  # the 0.1.2 package, from --original

        dag = OriginalDag({"bench": "lattice"})
        made = {}
        for name, spec, deps in tasks:
            made[name] = dag.task(name, spec)
            for dep in deps:
                made[name].add_dep(made[dep])
        started = time.perf_counter()
        dag.encode()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb}


def run_phase(args: argparse.Namespace, name: str, timeout: float | None = None) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--tasks",
        str(args.tasks),
        "--width",
        str(args.width),
        "--shape",
        args.shape,
        "--plan",
        args.plan,
    ]
    if args.original:
        command += ["--original", args.original]
    env = dict(os.environ)
    if name == "original-encode":
        env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"phase": name, "seconds": None, "note": f"did not finish in {timeout:.0f} s"}
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["?"]
        return {"phase": name, "seconds": None, "note": f"failed: {last[0][:120]}"}
    return {"phase": name, **json.loads(done.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--shape", choices=["lattice", "chain"], default="lattice")
    parser.add_argument("--original", help="directory holding a-la-mode 0.1.2 (pip --target)")
    parser.add_argument("--original-timeout", type=float, default=120)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.plan = os.path.join(tmp, "bench.plan.bencode")
        results = {
            name: run_phase(args, name)
            for name in ("floor-encode", "alamode-encode", "floor-load", "alamode-load")
        }
        size_mb = os.path.getsize(args.plan) / 1e6
        if args.original:
            results["original-encode"] = run_phase(args, "original-encode", args.original_timeout)
    print(f"{args.shape}, {args.tasks:,} tasks (width {args.width}), plan file {size_mb:.0f} MB")
    print("| phase | seconds | peak RSS (MB) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    pairs = {
        "alamode-encode": "floor-encode",
        "alamode-load": "floor-load",
        "original-encode": "alamode-encode",
    }
    for name, result in results.items():
        seconds = result.get("seconds")
        ratio = ""
        base = results.get(pairs.get(name, ""), {}).get("seconds")
        if seconds is not None and base:
            ratio = f"{seconds / base:.2f}× {pairs[name]}"
        shown = f"{seconds:.2f}" if seconds is not None else result.get("note", "")
        peak = f"{result['peak_mb']:.0f}" if "peak_mb" in result else ""
        print(f"| {name} | {shown} | {peak} | {ratio} |")


if __name__ == "__main__":
    main()
