"""Benchmark: the skip check of a plan that is fully done, in S3 against a local directory.

    python tests/benchmarks/bench_blobstore.py --tasks 10000

Starts moto's S3 server on 127.0.0.1, fills a bucket with what a run leaves for N done tasks
(a marker and a one-file upload each, written directly to save set-up time), and the same in
a directory store. Then, side by side: ``alamode run`` deciding there is nothing to do on
each (whole processes, start-up included), and the requests the S3 run made (counted from
the server's request log). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from a_la_mode import TaskDef, compile_plan
from a_la_mode.store.directory import LocalStore
from a_la_mode.store.manifest import Manifest
from a_la_mode.store.records import Success

ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]
HELLO_SHA = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


def start_moto(folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = folder / "moto.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(log, "w"),  # noqa: SIM115 - the server's for its life
        stderr=subprocess.STDOUT,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}", log


def fill_bucket(endpoint: str, outputs: list[str], task_of: dict[str, str]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="bench")

    def put(output: str) -> None:
        marker = {"output": output, "task": task_of[output], "upload": "u", "files": {}}
        client.put_object(Bucket="bench", Key=f"team/outputs/{output}/u/.alamode-empty", Body=b"")
        client.put_object(Bucket="bench", Key=f"team/success/{output}", Body=json.dumps(marker))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, outputs))


def fill_directory(root: Path, outputs: list[str], task_of: dict[str, str]) -> None:
    store = LocalStore(root)
    for output in outputs:
        (root / "outputs" / output).mkdir()
    store.outputs.record_successes(
        [(0, 0.0, Success(o, task_of[o], "p", 0, 0.0, "local", Manifest({}))) for o in outputs]
    )
    store.close()


def timed_run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [*ALAMODE, *args], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "0 succeeded" not in done.stderr:
        raise SystemExit(f"run failed or did work: {done.stdout[-400:]} {done.stderr[-400:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        plan = compile_plan({}, [TaskDef(f"t{i}", {"n": i}) for i in range(args.tasks)])
        plan.save(folder / "p.bencode")
        task_of = {plan.output(name): name for name in plan.tasks}
        server, endpoint, log = start_moto(folder)
        try:
            fill_bucket(endpoint, list(task_of), task_of)
            fill_directory(folder / "dir", list(task_of), task_of)
            env = {"ALAMODE_CACHE": str(folder / "cache")}
            before = len(log.read_text().splitlines())
            s3 = timed_run(
                [
                    f"--store-option=endpoint_url={endpoint}",
                    "run",
                    "p.bencode",
                    "-s",
                    "s3://bench/team",
                ],
                folder,
                env,
            )
            requests = log.read_text().splitlines()[before:]
            local = timed_run(["run", "p.bencode", "-s", str(folder / "dir")], folder, env)
        finally:
            server.terminate()
    lists = sum(1 for line in requests if '"GET /bench?' in line or "list-type=2" in line)
    print(f"{args.tasks} tasks, all done; alamode run deciding there is nothing to do")
    print(f"  directory store   {local:6.2f} s")
    print(
        f"  s3 (moto)         {s3:6.2f} s   {s3 / local:4.2f}x   {len(requests)} requests "
        f"({lists} LIST)"
    )
    for line in requests:
        print("    " + line.split('"')[1] if '"' in line else "    " + line)


if __name__ == "__main__":
    main()
