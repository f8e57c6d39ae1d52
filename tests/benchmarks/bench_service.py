"""Benchmark: the web service's pages, and a run started from it, side by side in one run.

    python tests/benchmarks/bench_service.py [--rounds 5]

- Server time of a plan's page (HTML) and of its JSON twin (``/api/plans/DIGEST``), for
  plans of 1,000 and 10,000 tasks (a fan-out of ten groups, each task on the one before it
  in its group), after one run of each: median of ``--rounds`` requests over loopback.
- A 100-task plan run cold from the service (POST, then polling ``/api/runs/ID`` until it
  ends) against ``alamode run`` of the same plan on a fresh store, rounds alternating.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.service import ALAMODE, Service


def flow(tasks: int, groups: int = 10) -> str:
    lines = ["tasks:"]
    per = tasks // groups
    for group in range(groups):
        for n in range(per):
            deps = f"deps: [g{group}.t{n - 1}], " if n else ""
            lines.append(
                f"  g{group}.t{n}: {{{deps}spec: {{command: 'echo {n} > \"$ALAMODE_OUTPUT/n\"'}}}}"
            )
    return "\n".join(lines) + "\n"


def alamode(*args: str, cwd: Path) -> str:
    done = subprocess.run([*ALAMODE, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"alamode {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def timed_get(service: Service, path: str, rounds: int) -> tuple[float, int]:
    seconds, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        status, text = service.get(path)
        seconds.append(time.perf_counter() - started)
        assert status == 200, text[:200]
        size = len(text)
    return statistics.median(seconds), size


def pages(here: Path, rounds: int) -> list[str]:
    rows = []
    for tasks in (1000, 10_000):
        folder = here / f"p{tasks}"
        folder.mkdir()
        (folder / "flow.yaml").write_text(flow(tasks))
        alamode("run", "flow.yaml", "--store", "store", "-q", cwd=folder)
        digest = json.loads(alamode("show", "flow.yaml", "--json", cwd=folder))["digest"]
        service = Service(folder / "store")
        try:
            service.get(f"/plans/{digest}")  # the plan is read once, then kept
            html, html_size = timed_get(service, f"/plans/{digest}", rounds)
            api, api_size = timed_get(service, f"/api/plans/{digest}", rounds)
        finally:
            service.stop()
        rows.append(
            f"| plan page, {tasks:,} tasks | {html:.2f} s | {html_size / 1e6:.1f} MB HTML |"
        )
        rows.append(f"| its JSON, {tasks:,} tasks | {api:.2f} s | {api_size / 1e6:.1f} MB JSON |")
    return rows


def runs(here: Path, rounds: int) -> list[str]:
    folder = here / "runs"
    folder.mkdir()
    (folder / "flow.yaml").write_text(flow(100))
    from_cli: list[float] = []
    from_service: list[float] = []
    for round_ in range(rounds):
        for kind in ("cli", "service") if round_ % 2 == 0 else ("service", "cli"):
            store = folder / f"store-{kind}-{round_}"
            if kind == "cli":
                started = time.perf_counter()
                alamode("run", "flow.yaml", "--store", str(store), "-q", cwd=folder)
                from_cli.append(time.perf_counter() - started)
                continue
            alamode("push", "flow.yaml", "--store", str(store), cwd=folder)
            service = Service(store)
            try:
                digest = service.api("/plans")["plans"][0]["digest"]
                token = service.csrf()
                started = time.perf_counter()
                _, text, _ = service.request(
                    f"/plans/{digest}/run", {"csrf": token}, {"Accept": "application/json"}
                )
                run = service.wait_for_run(json.loads(text)["id"])
                from_service.append(time.perf_counter() - started)
                assert run["status"] == "succeeded", run
            finally:
                service.stop()
    cli, web = statistics.median(from_cli), statistics.median(from_service)
    return [
        f"| 100 tasks, `alamode run` | {cli:.2f} s | 1.00× |",
        f"| 100 tasks, run from the service | {web:.2f} s | {web / cli:.2f}× |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        here = Path(scratch)
        rows = pages(here, args.rounds) + runs(here, args.rounds)
    print("| measure | time | note |")
    print("| --- | ---: | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
