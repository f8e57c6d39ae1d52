"""Benchmark: running plans, against the process-spawn floor and GNU make.

    python tests/benchmarks/bench_run.py cold --tasks 1000
    python tests/benchmarks/bench_run.py noop --tasks 100000

alamode is measured as a user has it: the working tree is built and installed, with its
dependencies, into a fresh virtual environment (``--checkout`` runs the tree in place
instead, under this interpreter). An editable install adds a path finder to every start-up,
and this interpreter's site-packages may hold ``.pth`` files of its own (here, a sandbox's
certificate hook): 14 ms of each command's start-up that an installed copy does not pay.

``cold``: N trivial tasks (``touch "$ALAMODE_OUTPUT/done"``) on an empty store, ``-j 2``, for
three shapes (fan-out: independent tasks; chain; lattice of width 10), side by side with
``xargs -P 2`` spawning the same N shell commands (the floor: no scheduling at all) and
``make -j2`` on a Makefile with the same DAG. A fourth contender, the *protocol floor*, is the
least any runner that keeps alamode's promises must do per task, in a bare Python loop with
no scheduling, database or threads: make a staging directory, spawn the same command into
it, hash each file it wrote and make it read-only, rename the directory into place; one
``syncfs`` at the end. It runs as two processes taking every other task (one for the chain),
ignoring dependencies as ``xargs`` does. Between the floor and it lies the protocol's own
cost; between it and ``alamode run``, alamode's.

``noop``: N tasks already done (a store holding exactly the rows and directories a run leaves,
written directly to save set-up time): ``alamode run`` deciding there is nothing to do, next to
``alamode validate`` (load and verify the plan, nothing else) and ``make -q`` on the same DAG
with every target up to date. Every figure is a whole process, start-up included.

Ratios are within one run on this shared machine; nothing here asserts a time. The cold
headline is paired: alamode's time over the floor's in the same round, its median over the
rounds, a 95 % interval for that median (bootstrap), and the spread of the rounds, because
this machine's speed drifts between rounds as well as hours.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]
ROOT = Path(__file__).resolve().parents[2]
COMMAND = 'touch "$ALAMODE_OUTPUT/done"'
PROTOCOL_FLOOR = """
import ctypes, hashlib, os, sys
root, command, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = sys.stdin.read().split()
children = []
for worker in range(workers):
    pid = os.fork()
    if pid:
        children.append(pid)
        continue
    env = dict(os.environ)
    for name in names[worker::workers]:
        stage = f"{root}/staging/{name}"
        os.mkdir(stage)
        env["ALAMODE_OUTPUT"] = stage
        child = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], env, setsid=True)
        if os.waitpid(child, 0)[1] != 0:
            os._exit(1)
        for entry in os.scandir(stage):
            with open(entry.path, "rb") as handle:
                hashlib.file_digest(handle, "sha256")
                os.fchmod(handle.fileno(), 0o444)
        os.rename(stage, f"{root}/outputs/{name}")
    os._exit(0)
failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
fd = os.open(root, os.O_RDONLY)
ctypes.CDLL(None, use_errno=True).syncfs(fd)
sys.exit(1 if failed else 0)
"""


SHAPES = ("fan-out", "lattice", "chain")


def shape(kind: str, tasks: int) -> list[tuple[str, list[str]]]:
    """(name, deps) in topological order."""
    if kind == "fan-out":
        return [(f"t{i}", []) for i in range(tasks)]
    if kind == "chain":
        return [(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(tasks)]
    width = 10
    result = []
    for i in range(tasks):
        layer, column = divmod(i, width)
        deps = [f"t{layer - 1}_{column}", f"t{layer - 1}_{(column + 1) % width}"] if layer else []
        result.append((f"t{layer}_{column}", deps))
    return result


def write_plan(dag: list[tuple[str, list[str]]], folder: Path) -> Path:
    from a_la_mode import TaskDef, compile_plan

    plan = compile_plan(
        {},
        [TaskDef(name, {"command": COMMAND, "n": i}, deps) for i, (name, deps) in enumerate(dag)],
    )
    path = folder / "bench.plan.bencode"
    plan.save(path)
    return path


def write_makefile(dag: list[tuple[str, list[str]]], folder: Path) -> Path:
    lines = [".PHONY: all", "all: " + " ".join(f"out/{name}" for name, _ in dag), ""]
    for name, deps in dag:
        lines.append(f"out/{name}: " + " ".join(f"out/{d}" for d in deps))
        lines.append('\t@touch "$@"')  # the quotes make GNU make use /bin/sh, as alamode does
    (folder / "out").mkdir(exist_ok=True)
    path = folder / "Makefile"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(
    command: list[str], cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> float:
    return timed_with_cpu(command, cwd, stdin, env)[0]


def timed_with_cpu(
    command: list[str], cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the command and everything it ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, input=stdin, text=True, capture_output=True, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0,):
        raise SystemExit(f"{command[:3]} failed ({done.returncode}): {done.stderr[-300:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds, cpu


def rotated(ways: tuple[str, ...], number: int) -> tuple[str, ...]:
    """The contenders in round ``number``'s order: each round starts one further along, so
    that none always runs right after the same other."""
    shift = number % len(ways)
    return ways[shift:] + ways[:shift]


def paired(ours: list[float], theirs: list[float]) -> list[float]:
    """Per round, ``ours`` over ``theirs``: two times taken seconds apart, so that the
    machine's drift between rounds cancels out."""
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def installed(where: Path) -> list[str]:
    """The command line of alamode built from this tree and installed, with its
    dependencies, into a new virtual environment below ``where`` (pip compiles the bytecode
    as it installs)."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)], check=True
    )
    return [python, "-c", "from a_la_mode.cli.main import main; main()"]


def median_interval(values: list[float], resamples: int = 4000) -> tuple[float, float]:
    """A 95 % interval for the median of ``values`` (a percentile bootstrap: the medians of
    ``resamples`` draws with replacement; seeded, so the same times give the same interval).
    Whether a target is met is read from this, not from one lucky or unlucky round."""
    draw = random.Random(0).choices
    medians = sorted(statistics.median(draw(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def cold(tasks: int, rounds: int, where: Path, shapes: list[str], alamode: list[str]) -> None:
    print(f"cold runs, {tasks:,} trivial tasks, 2 at a time; medians of {rounds} rounds")
    print(
        "| shape | alamode run -j 2 | floor | protocol floor | make -j2 | alamode / floor "
        "| its 95 % interval | rounds: alamode / floor | protocol floor / floor "
        "| alamode / protocol floor | alamode / make | CPU: alamode / floor |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    keys = ("alamode", "floor", "protocol", "make")
    # Nothing is deleted until the end: ext4 allocates new inodes slowly for a minute after
    # many were deleted (it skips recently deleted ones), which would tax whichever contender
    # runs after a clean-up. Round 0 warms up and is not counted; the order rotates.
    with tempfile.TemporaryDirectory(dir=where) as top:
        for kind in shapes:
            dag = shape(kind, tasks)
            names = "\n".join(name for name, _ in dag) + "\n"
            # A chain cannot run two at a time: its floor spawns the commands one by one.
            parallel = "1" if kind == "chain" else "2"
            times: dict[str, list[float]] = {key: [] for key in keys}
            cpus: dict[str, list[float]] = {key: [] for key in keys}
            for number in range(rounds + 1):
                folder = Path(top, f"{kind}-{number}")
                folder.mkdir()
                plan = write_plan(dag, folder)
                write_makefile(dag, folder)
                for sub in ("floor", "protocol/staging", "protocol/outputs"):
                    (folder / sub).mkdir(parents=True)
                contenders = {
                    "alamode": [*alamode, "-q", "run", str(plan), "-j", "2", "--store", "store"],
                    "floor": ["xargs", "-P", parallel, "-I{}", "sh", "-c", 'touch "floor/{}"'],
                    "protocol": [
                        sys.executable,
                        "-c",
                        PROTOCOL_FLOOR,
                        "protocol",
                        COMMAND,
                        parallel,
                    ],
                    "make": ["make", "-j2", "-s"],
                }
                for key in rotated(keys, number):
                    stdin = names if key in ("floor", "protocol") else None
                    seconds, cpu = timed_with_cpu(contenders[key], folder, stdin)
                    if number:
                        times[key].append(seconds)
                        cpus[key].append(cpu)
                    os.sync()
            ours, floor, protocol, make = (statistics.median(times[k]) for k in keys)
            cpu_ratio = statistics.median(cpus["alamode"]) / statistics.median(cpus["floor"])
            # The headline ratio is paired: alamode against the floor of the same round, a
            # few seconds apart, so that the machine's speed, which drifts by 20 % from
            # one hour to the next, cancels out; its median, and the spread over the rounds.
            ratios = paired(times["alamode"], times["floor"])
            low, high = median_interval(ratios)
            print(
                f"| {kind} | {ours:.2f} s | {floor:.2f} s (xargs -P {parallel}) | "
                f"{protocol:.2f} s | {make:.2f} s | **{statistics.median(ratios):.2f}×** | "
                f"{low:.2f}–{high:.2f}× | {min(ratios):.2f}–{max(ratios):.2f}× | "
                f"{protocol / floor:.2f}× | {ours / protocol:.2f}× | {ours / make:.2f}× | "
                f"{cpu_ratio:.2f}× |"
            )
        startup = [timed_with_cpu([*alamode, "--version"], Path(top)) for _ in range(5)]
        wall = statistics.median(seconds for seconds, _ in startup)
        cpu = statistics.median(cpu for _, cpu in startup)
        print(f"start-up alone (alamode --version): {wall:.2f} s, {cpu:.2f} s CPU")


def populate(plan_path: Path, store_root: Path) -> None:
    """Leave the store as a run that produced every (empty) output would."""
    from a_la_mode import load_plan
    from a_la_mode.store.directory import LocalStore

    plan = load_plan(plan_path)
    store = LocalStore(store_root)
    run = store.begin_run(plan, "local")
    now = time.time()
    db = store.database.db
    db.execute("BEGIN IMMEDIATE")
    for name in plan.tasks:
        output = plan.output(name)
        (store_root / "outputs" / output).mkdir()
        db.execute(
            "INSERT INTO successes VALUES (?, ?, ?, ?, ?, 0.01, 'local', 0, 0, '{}')",
            (output, name, plan.digest, run, now),
        )
    db.execute("COMMIT")
    store.end_run(run, "succeeded")


def noop(tasks: int, rounds: int, alamode: list[str]) -> None:
    print(
        f"no-op runs, {tasks:,} tasks all done (lattice of width 10); "
        f"medians of {rounds} rounds, the order alternating"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dag = shape("lattice", tasks)
        plan = write_plan(dag, folder)
        populate(plan, folder / "store")
        write_makefile(dag, folder)
        for name, _ in dag:  # in dependency order, so every target is up to date
            (folder / "out" / name).touch()
        contenders = {
            "validate": [*alamode, "validate", str(plan)],
            "run": [*alamode, "-q", "run", str(plan), "--store", "store"],
            "make": ["make", "-q"],
        }
        times: dict[str, list[float]] = {key: [] for key in contenders}
        for number in range(rounds):
            order = list(contenders) if number % 2 == 0 else list(reversed(contenders))
            for key in order:
                times[key].append(timed(contenders[key], folder))
        shutil.rmtree(folder / "out")
    validate, ours, make_q = (statistics.median(times[key]) for key in contenders)
    ratios = sorted(paired(times["run"], times["validate"]))
    print("| step | seconds | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| alamode validate (load + verify) | {validate:.2f} | |")
    print(
        f"| alamode run, nothing to do | {ours:.2f} | {ours / validate:.2f}× validate "
        f"(rounds: {ratios[0]:.2f}–{ratios[-1]:.2f}×) |"
    )
    print(f"| make -q, all up to date | {make_q:.2f} | |")


def compile_bytecode() -> None:
    """Leave alamode's bytecode in place, as installing a wheel does. In a source checkout with
    PYTHONDONTWRITEBYTECODE=1 (this machine sets it), every command would otherwise compile
    each edited module again: 50 ms of every run's start-up that no installed copy pays."""
    import compileall
    import importlib.util

    for package in ("a_la_mode", "engines"):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["cold", "noop"])
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (cold: per shape)")
    parser.add_argument(
        "--dir", type=Path, default=Path.cwd(), help="where the stores go (default: here)"
    )
    parser.add_argument(
        "--shape",
        action="append",
        choices=SHAPES,
        help="cold: only this shape (repeatable; default: all three)",
    )
    parser.add_argument(
        "--checkout",
        action="store_true",
        help="run alamode from this tree under this interpreter, not installed in a new venv",
    )
    args = parser.parse_args()
    os.environ.pop("ALAMODE_STORE", None)
    with tempfile.TemporaryDirectory() as scratch:
        if args.checkout:
            compile_bytecode()
            alamode = ALAMODE
        else:
            alamode = installed(Path(scratch))
        print(f"alamode: {alamode[0]}")
        if args.mode == "cold":
            cold(args.tasks or 1000, args.rounds, args.dir, args.shape or list(SHAPES), alamode)
        else:
            noop(args.tasks or 100_000, args.rounds, alamode)


if __name__ == "__main__":
    main()
