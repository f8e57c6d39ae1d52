"""Runs started by the service (from the browser, or by a schedule): each one is ``alamode
run PLAN --json`` as a child process, so it uses the same runner and engines as the command
line, and Ctrl-C's path (SIGINT) cancels it. Its JSON events are kept here for the run's
page, which streams them as they come.

Two clicks never run a task twice: a run of the same plan and targets that is still going
is returned instead of a new one; and across processes, the store's leases make every
output be produced once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]


class ServiceRun:
    """One ``alamode run`` child, its events so far, and how it ended."""

    def __init__(
        self, plan: str, targets: list[str], argv: list[str], env: dict[str, str] | None = None
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.plan, self.targets = plan, targets
        self.started = time.time()
        self.events: list[dict[str, Any]] = []
        self.status = "running"
        self.cancelled = False  # cancelled, perhaps not ended yet: never handed out again
        self.errors = ""
        self.changed = threading.Condition()
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.finished_callbacks: list[Callable[[ServiceRun], None]] = []
        self._stderr: list[str] = []
        # stderr on a thread of its own: a child that writes much to it never blocks
        self._stderr_reader = threading.Thread(
            target=self._read_stderr, name=f"alamode-run-{self.id}-err", daemon=True
        )
        self._stderr_reader.start()
        threading.Thread(target=self._read, name=f"alamode-run-{self.id}", daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.append(self.process.stderr.read())

    def _read(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.changed:
                self.events.append(event)
                self.changed.notify_all()
        self._stderr_reader.join()
        errors = "".join(self._stderr)
        code = self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()
        with self.changed:
            self.errors = errors.strip()
            self.status = {0: "succeeded", 1: "failed", 130: "interrupted"}.get(code, "error")
            self.changed.notify_all()
        for callback in self.finished_callbacks:
            callback(self)

    def wait(self, timeout: float) -> str:
        """Wait until the run has ended (its events all read); its status."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.status == "running" and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
        return self.status

    def cancel(self) -> None:
        """As Ctrl-C: running tasks are stopped, nothing half-done is recorded."""
        if self.status == "running":
            self.cancelled = True
            self.process.send_signal(signal.SIGINT)

    def snapshot(self, since: int) -> tuple[list[dict[str, Any]], bool]:
        """The events from ``since`` on, and whether the run is over: without waiting."""
        with self.changed:
            return self.events[since:], self.status != "running"

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event["event"]] = counts.get(event["event"], 0) + 1
        return {
            "id": self.id,
            "plan": self.plan,
            "targets": self.targets,
            "status": self.status,
            "started": self.started,
            "events": len(self.events),
            "counts": counts,
            "errors": self.errors,
        }


class RunManager:
    """The service's runs, by ID."""

    def __init__(self, store: str, store_options: dict[str, Any], engine: str) -> None:
        self.store, self.engine = store, engine
        # Store options reach the child through its environment, never its argv (which
        # every local user can read in /proc): secrets stay the owner's.
        self.env = {**os.environ, "ALAMODE_STORE_OPTIONS": json.dumps(store_options)}
        self.runs: dict[str, ServiceRun] = {}
        self.lock = threading.Lock()

    def start(
        self, plan: str, plan_file: str, targets: list[str], engine: str | None = None
    ) -> ServiceRun:
        """A run of ``plan`` (its file in the store), or the one of it still going."""
        with self.lock:
            for run in self.runs.values():
                going = run.status == "running" and not run.cancelled
                if run.plan == plan and run.targets == targets and going:
                    return run
            argv = [*ALAMODE, "run", plan_file, "--store", self.store]
            argv += ["--json", "--engine", engine or self.engine]
            for target in targets:
                argv += ["--target", target]
            run = ServiceRun(plan, targets, argv, self.env)
            self.runs[run.id] = run
            return run

    def get(self, run_id: str) -> ServiceRun | None:
        return self.runs.get(run_id)

    def running(self, plan: str) -> ServiceRun | None:
        with self.lock:
            for run in self.runs.values():
                if run.plan == plan and run.status == "running":
                    return run
        return None

    def stop_all(self) -> None:
        for run in list(self.runs.values()):
            run.cancel()
        for run in list(self.runs.values()):
            try:
                run.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.process.kill()
