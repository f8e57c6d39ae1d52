"""Benchmark: what a compiled helper would win on a cold run (a prototype, for a decision).

    python tests/benchmarks/bench_compiled_helper.py --rounds 12 [--shape lattice] [--dir DIR]

Builds ``prototypes/compiled_helper.c`` (gcc, Python's headers and OpenSSL's ``libcrypto``)
and runs 1,000 trivial tasks, ``-j 2``, four ways in interleaved rounds: ``xargs -P 2``
(``-P 1`` for the chain), ``alamode run`` as it is, ``alamode run`` with the helper in
place of the local engine's spawn-and-wait (spawn, drain the output into the log, wait, end
the process group: one call that holds no interpreter lock) and of the store's seal (hash
every file and make it read-only: one call), and ``alamode run`` with a *native loop*: the
helper in place of a worker's whole per-task work (staging directory, spawn, wait, seal,
journal line, rename, read-only: one call). Everything else is alamode's own: claims,
records, events, the scheduler, the group commit. Ratios are paired (alamode over the floor
in the same round). The prototype handles only what this benchmark needs: no timeouts, files
with ASCII names in the top folder of an output, no pause points. See docs/benchmarks.md,
seventh and eighth rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import SHAPES, compile_bytecode, paired, rotated, shape, timed, write_plan

HERE = Path(__file__).parent
# Imported before alamode runs: the helper in place of the engine's and the store's parts.
SWAP = """
import os, time, _fastrun
from a_la_mode import localstore
from a_la_mode.engine import Result
from engines.local import LocalEngine

def run(self, job):
    started = time.monotonic()
    env = self._environ.overlay({**job.env, **job.environment()})
    entries = [e for n, e in self._environ._entries.items() if n not in env._entries]
    entries.extend(env._entries.values())
    argv = [b"/bin/sh", b"-c", job.command.encode()]
    status = _fastrun.spawn_wait(b"/bin/sh", argv, entries, job.log_path.encode())
    code = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    return Result(None, seconds, signal=-code) if code < 0 else Result(code, seconds)

def seal(root):
    files = _fastrun.seal(os.fsencode(root))
    return localstore.Manifest({name: (size, digest) for name, size, digest in files})

LocalEngine.run = run
localstore._seal = seal
"""
# Imported before alamode runs: the helper in place of a worker's whole task.
SWAP_LOOP = """
import os, time, _fastrun
from a_la_mode import localstore, runner
from a_la_mode.engine import Result

def _execute(self, job):
    journal = self.store._journal
    with journal._lock:
        if journal._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            journal._fd = os.open(journal.path, flags, 0o644)
    environ = self.engine._environ
    env = environ.overlay({**job.env, **job.environment()})
    entries = [e for n, e in environ._entries.items() if n not in env._entries]
    entries.extend(env._entries.values())
    started = time.monotonic()
    status, files = _fastrun.run_publish(
        b"/bin/sh", [b"/bin/sh", b"-c", job.command.encode()], entries,
        job.log_path.encode(), job.output_dir.encode(),
        self.store.output_folder(job.output_id).encode(), journal._fd, job.output_id.encode(),
    )
    code = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    result = Result(None, seconds, signal=-code) if code < 0 else Result(code, seconds)
    if files is None:
        return result, None
    return result, localstore.Manifest({name: (size, digest) for name, size, digest in files})

runner._Runner._execute = _execute
"""


def build(folder: Path) -> None:
    """The helper, as an extension module in ``folder``."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O2",
            "-Wno-deprecated-declarations",  # OpenSSL 3 deprecates the plain SHA256 calls
            f"-I{sysconfig.get_paths()['include']}",
            str(HERE / "prototypes" / "compiled_helper.c"),
            "-lcrypto",
            "-o",
            str(folder / f"_fastrun{suffix}"),
        ],
        check=True,
    )
    (folder / "swap.py").write_text(SWAP)
    (folder / "swap_loop.py").write_text(SWAP_LOOP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--shape", action="append", choices=SHAPES)
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where the stores go")
    args = parser.parse_args()
    os.environ.pop("ALAMODE_STORE", None)
    compile_bytecode()
    ways = ("floor", "alamode", "alamode + helper", "alamode + native loop")
    print(
        "| shape | floor | alamode | alamode + helper | alamode + native loop | alamode / floor "
        "| with the helper / floor | with the native loop / floor |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(dir=args.dir) as top:
        helper = Path(top, "helper")
        helper.mkdir()
        build(helper)
        swapped = {**os.environ, "PYTHONPATH": os.pathsep.join([str(helper), *sys.path])}
        commands = {
            "alamode": [sys.executable, "-c", "from a_la_mode.cli import main; main()"],
            "alamode + helper": [
                sys.executable,
                "-c",
                "import swap; from a_la_mode.cli import main; main()",
            ],
            "alamode + native loop": [
                sys.executable,
                "-c",
                "import swap_loop; from a_la_mode.cli import main; main()",
            ],
        }
        for kind in args.shape or list(SHAPES):
            dag = shape(kind, args.tasks)
            names = "\n".join(name for name, _ in dag) + "\n"
            parallel = "1" if kind == "chain" else "2"
            times: dict[str, list[float]] = {way: [] for way in ways}
            for number in range(args.rounds + 1):  # round 0 warms up
                folder = Path(top, f"{kind}-{number}")
                folder.mkdir()
                plan = write_plan(dag, folder)
                (folder / "floor").mkdir()
                for way in rotated(ways, number):
                    if way == "floor":
                        xargs = ["xargs", "-P", parallel, "-I{}", "sh", "-c", 'touch "floor/{}"']
                        seconds = timed(xargs, folder, names)
                    else:
                        store = "store-" + way.replace(" ", "").replace("+", "-")
                        run = [*commands[way], "-q", "run", str(plan), "-j", "2", "--store", store]
                        seconds = timed(run, folder, env=swapped)
                    if number:
                        times[way].append(seconds)
                    os.sync()
            floor, ours, helped, looped = (statistics.median(times[way]) for way in ways)
            ratio = {way: statistics.median(paired(times[way], times["floor"])) for way in ways[1:]}
            print(
                f"| {kind} | {floor:.2f} s | {ours:.2f} s | {helped:.2f} s | {looped:.2f} s | "
                f"{ratio['alamode']:.2f}× | {ratio['alamode + helper']:.2f}× | "
                f"{ratio['alamode + native loop']:.2f}× |"
            )


if __name__ == "__main__":
    main()
