"""Benchmark: where a cold run's time goes, the task phase alone (no start-up), three ways.

    python tests/benchmarks/bench_run_phases.py --tasks 1000 --rounds 3 [--dir DIR]

N trivial fan-out tasks (``touch "$ALAMODE_OUTPUT/done"``), two at a time, each way in a
fresh interpreter that times only its own task phase (wall and its own CPU):

- ``bare threads``: a bare loop in two threads of one process doing what the protocol needs
  (staging directory, spawn through ``engines.spawn``, hash and seal, rename, one syncfs):
  whether threads and the interpreter lock are an obstacle in themselves;
- ``engine + store``: alamode's own ``LocalEngine.run`` and ``LocalStore.publish`` in two
  threads, with no runner around them: what the engine and store cost;
- ``runner``: ``run_plan`` (claims, jobs, notices, records, events, the group commit): what
  the runner adds;
- ``runner, hollowed``: ``run_plan`` with its work per task taken out, an ablation: claims
  that touch no database, no success records, no seal (publishing is the rename alone) and
  an engine that only spawns the command and waits for it. What is left is the runner's
  structure (scheduler, jobs, worker threads, notices): the least this design can cost.

``xargs -P 2`` on the same commands (a whole process, start-up included: it has next to
none) is timed in the same rounds, for the ratios. See docs/benchmarks.md for the findings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import COMMAND, rotated, shape, write_plan

TIMER = """
import json, os, resource, sys, time
def report(started, cpu):
    used = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": time.perf_counter() - started,
                      "cpu": used.ru_utime + used.ru_stime - cpu}))
def begin():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), used.ru_utime + used.ru_stime
"""

BARE_THREADS = (
    TIMER
    + """
import ctypes, hashlib, threading
from engines.spawn import Environment, spawn
root, command = sys.argv[1], sys.argv[2]
names = sys.stdin.read().split()
os.makedirs(f"{root}/staging"); os.makedirs(f"{root}/outputs")
base = Environment(os.environ)
def work(mine):
    for name in mine:
        stage = f"{root}/staging/{name}"
        os.mkdir(stage)
        env = base.overlay({"ALAMODE_OUTPUT": stage})
        reader, writer = os.pipe()
        pid = spawn("/bin/sh", ["/bin/sh", "-c", command], env, writer)
        os.close(writer)
        os.waitpid(pid, 0)
        os.close(reader)
        for entry in os.scandir(stage):
            with open(entry.path, "rb") as handle:
                hashlib.file_digest(handle, "sha256")
                os.fchmod(handle.fileno(), 0o444)
        os.rename(stage, f"{root}/outputs/{name}")
started, cpu = begin()
threads = [threading.Thread(target=work, args=(names[i::2],)) for i in range(2)]
for thread in threads: thread.start()
for thread in threads: thread.join()
ctypes.CDLL(None).syncfs(os.open(root, os.O_RDONLY))
report(started, cpu)
"""
)

ENGINE_AND_STORE = (
    TIMER
    + """
import threading
from pathlib import Path
from a_la_mode.engine import Job
from a_la_mode.localstore import LocalStore
from engines.local import LocalEngine
root, command = Path(sys.argv[1]), sys.argv[2]
names = sys.stdin.read().split()
store, engine = LocalStore(root / "store"), LocalEngine()
jobs = [
    Job(task=name, output_id=f"{i:064x}", command=command, env={},
        output_dir=store.staging_path(f"{i:064x}"), log_path=f"{root}/logs/{i}.log",
        inputs={})
    for i, name in enumerate(names)
]
def work(mine):
    for job in mine:
        os.mkdir(job.output_dir)
        engine.run(job)
        store.publish(job.output_id, job.output_dir)
started, cpu = begin()
threads = [threading.Thread(target=work, args=(jobs[i::2],)) for i in range(2)]
for thread in threads: thread.start()
for thread in threads: thread.join()
store.make_durable([])
report(started, cpu)
"""
)

RUNNER = (
    TIMER
    + """
from pathlib import Path
from a_la_mode import load_plan
from a_la_mode.localstore import LocalStore
from a_la_mode.runner import RunOptions, run_plan
from engines.local import LocalEngine
plan, store = load_plan(sys.argv[1]), LocalStore(Path(sys.argv[2]))
engine = LocalEngine()
started, cpu = begin()
run_plan(plan, store, engine, RunOptions(jobs=2), lambda event: None)
report(started, cpu)
"""
)


HOLLOWED = RUNNER.replace(
    "started, cpu = begin()",
    """from a_la_mode.engine import Result
from a_la_mode.localstore import Lease, Manifest
from engines.spawn import spawn
rows = iter(range(1, 1 << 30))
def claim_many(self, wanted, run):
    return [Lease("ours", attempt=next(rows), number=1, log=f"{self.root}/logs/{o}")
            for o, _ in wanted]
def publish(self, output_id, staging):
    os.rename(staging, self.output_folder(output_id))
    return Manifest({})
def run(self, job):
    reader, writer = os.pipe()
    env = self._environ.overlay(job.environment())
    pid = spawn("/bin/sh", ["/bin/sh", "-c", job.command], env, writer)
    os.close(writer)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    os.close(reader)
    return Result(status, 0.0)
LocalStore.claim_many, LocalStore.publish = claim_many, publish
LocalStore.record_successes = lambda self, finished: None
LocalEngine.run = run
started, cpu = begin()""",
)


def phase(script: str, args: list[str], cwd: Path, stdin: str) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        input=stdin,
        text=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    if done.returncode:
        raise SystemExit(f"failed: {done.stderr[-400:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["wall"], figures["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where the files go")
    args = parser.parse_args()
    dag = shape("fan-out", args.tasks)
    names = "\n".join(name for name, _ in dag) + "\n"
    ways = ("xargs", "bare threads", "engine + store", "runner", "runner, hollowed")
    walls: dict[str, list[float]] = {way: [] for way in ways}
    cpus: dict[str, list[float]] = {way: [] for way in ways}
    # As in bench_run.py: nothing is deleted until the end (ext4's recently-deleted inodes),
    # round 0 is a warm-up, and the order rotates.
    with tempfile.TemporaryDirectory(dir=args.dir) as top:
        for number in range(args.rounds + 1):
            folder = Path(top, f"round-{number}")
            folder.mkdir()
            plan = write_plan(dag, folder)
            (folder / "xargs").mkdir()
            for way in rotated(ways, number):
                if way == "xargs":
                    started = time.perf_counter()
                    subprocess.run(
                        ["xargs", "-P", "2", "-I{}", "sh", "-c", 'touch "xargs/{}"'],
                        cwd=folder,
                        input=names,
                        text=True,
                        check=True,
                    )
                    wall, cpu = time.perf_counter() - started, float("nan")
                elif way == "bare threads":
                    wall, cpu = phase(BARE_THREADS, ["bare", COMMAND], folder, names)
                elif way == "engine + store":
                    wall, cpu = phase(ENGINE_AND_STORE, ["parts", COMMAND], folder, names)
                elif way == "runner":
                    wall, cpu = phase(RUNNER, [str(plan), "store"], folder, "")
                else:
                    wall, cpu = phase(HOLLOWED, [str(plan), "hollowed"], folder, "")
                if number:
                    walls[way].append(wall)
                    cpus[way].append(cpu)
                os.sync()
    floor = statistics.median(walls["xargs"])
    print(f"task phase only, {args.tasks:,} fan-out tasks, 2 at a time; medians of {args.rounds}")
    print("| way | wall | / xargs | its own CPU |")
    print("| --- | ---: | ---: | ---: |")
    for way in ways:
        wall = statistics.median(walls[way])
        cpu = "" if way == "xargs" else f"{statistics.median(cpus[way]):.2f} s"
        print(f"| {way} | {wall:.2f} s | {wall / floor:.2f}× | {cpu} |")


if __name__ == "__main__":
    main()
