"""Benchmark: the Dask and SSH engines against the local engine, side by side in one run.

    python tests/benchmarks/bench_cluster.py [--trivial 1000] [--sleepers 200]

Dask: a real scheduler and two worker processes (one thread each) on 127.0.0.1, like the
tests'. Each plan runs as a whole ``alamode run`` process of this tree, on a ``file://``
store of its own (the blob store on local disk, so that both engines pay the same store):

- ``--trivial`` independent tasks that each write one small file: local engine (``-j 2``)
  against Dask on two workers; the difference per task is what Dask adds;
- ``--sleepers`` tasks of ``sleep 0.5`` on Dask's two workers, against the ideal (total work
  divided by the workers).

SSH: one real ``sshd`` on loopback. The two libraries the engine could be built on, measured
on the same server: connecting, then 50 commands one after another on that connection; and
the engine itself on ``--ssh-tasks`` trivial tasks against the local engine.

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.sshd import Sshd
from tests.test_dask_engine import Cluster

ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]


def plan(tasks: int, command: str) -> str:
    lines = ["tasks:"]
    for n in range(tasks):
        lines.append(f"  t{n}: {{spec: {{command: '{command} # {n}'}}}}")
    return "\n".join(lines) + "\n"


def timed_run(here: Path, spec: str, *args: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [*ALAMODE, "run", spec, "-q", *args],
        cwd=here,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise SystemExit(f"alamode run {spec} {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - started


def store(here: Path, name: str) -> list[str]:
    return ["--store", f"file://{here}/{name}"]


def bench_dask(here: Path, trivial: int, sleepers: int) -> list[str]:
    cluster = Cluster(here)
    cluster.start()
    try:
        (here / "trivial.yaml").write_text(plan(trivial, 'echo x > "$ALAMODE_OUTPUT/x"'))
        (here / "sleepers.yaml").write_text(plan(sleepers, "sleep 0.5"))
        dask = ["--engine", "dask", "--scheduler", cluster.address]
        local = timed_run(here, "trivial.yaml", "-j", "2", *store(here, "a"))
        on_dask = timed_run(here, "trivial.yaml", *dask, *store(here, "b"))
        slept = timed_run(here, "sleepers.yaml", *dask, *store(here, "c"))
    finally:
        cluster.stop()
    ideal = sleepers * 0.5 / 2
    extra_ms = (on_dask - local) / trivial * 1000
    return [
        f"| {trivial:,} trivial tasks, local engine -j 2 | {local:.1f} s | 1.00× |",
        f"| {trivial:,} trivial tasks, dask, 2 workers | {on_dask:.1f} s | "
        f"{on_dask / local:.2f}× ({extra_ms:+.0f} ms a task) |",
        f"| {sleepers} tasks of 0.5 s, dask, 2 workers | {slept:.1f} s | "
        f"{slept / ideal:.2f}× the ideal {ideal:.0f} s |",
    ]


def bench_ssh(here: Path, tasks: int) -> list[str]:
    server = Sshd(here / "sshd")
    (here / "sshd").mkdir()
    server.start()
    try:
        env = {"HOME": str(server.home), "SSH_AUTH_SOCK": ""}
        os.environ.update(env)  # the libraries read ~/.ssh from HOME
        asyncssh_connect, asyncssh_50 = asyncio.run(_asyncssh(server))
        paramiko_connect, paramiko_50 = _paramiko(server)
        (here / "ssh.yaml").write_text(plan(tasks, 'echo x > "$ALAMODE_OUTPUT/x"'))
        local = timed_run(here, "ssh.yaml", "-j", "2", *store(here, "s1"))
        over_ssh = timed_run(
            here, "ssh.yaml", "--engine", "ssh", "--host", server.host, "-j", "2",
            *store(here, "s2"), env=env,
        )  # fmt: skip
    finally:
        server.stop()
    return [
        f"| asyncssh: connect / 50 commands | {asyncssh_connect * 1000:.0f} ms / "
        f"{asyncssh_50 * 1000:.0f} ms | |",
        f"| paramiko: connect / 50 commands | {paramiko_connect * 1000:.0f} ms / "
        f"{paramiko_50 * 1000:.0f} ms | |",
        f"| {tasks} trivial tasks, local engine -j 2 | {local:.1f} s | 1.00× |",
        f"| {tasks} trivial tasks, ssh engine -j 2 | {over_ssh:.1f} s | "
        f"{over_ssh / local:.2f}× ({(over_ssh - local) / tasks * 1000:+.0f} ms a task) |",
    ]


async def _asyncssh(server: Sshd) -> tuple[float, float]:
    import asyncssh

    started = time.perf_counter()
    async with asyncssh.connect("127.0.0.1", port=server.port, username=server.user) as conn:
        connected = time.perf_counter()
        for _ in range(50):
            await conn.run("true", check=True)
        return connected - started, time.perf_counter() - connected


def _paramiko(server: Sshd) -> tuple[float, float]:
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(server.home / ".ssh" / "known_hosts"))
    started = time.perf_counter()
    client.connect(
        "127.0.0.1", port=server.port, username=server.user,
        key_filename=str(server.home / ".ssh" / "id_ed25519"),
        allow_agent=False, look_for_keys=False,
    )  # fmt: skip
    connected = time.perf_counter()
    for _ in range(50):
        _, stdout, _ = client.exec_command("true")
        stdout.channel.recv_exit_status()
    ended = time.perf_counter()
    client.close()
    return connected - started, ended - connected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trivial", type=int, default=1000)
    parser.add_argument("--sleepers", type=int, default=200)
    parser.add_argument("--ssh-tasks", type=int, default=200)
    parser.add_argument("--only", choices=["dask", "ssh"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        here = Path(scratch)
        rows = [] if args.only == "ssh" else bench_dask(here, args.trivial, args.sleepers)
        rows += [] if args.only == "dask" else bench_ssh(here, args.ssh_tasks)
    print("| measure | time | ratio |")
    print("| --- | ---: | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
