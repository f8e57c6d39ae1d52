"""``alamode serve`` as a real process on a free loopback port, and a plain HTTP client."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ALAMODE = [sys.executable, "-c", "from a_la_mode.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Service:
    """A running ``alamode serve``; ``get``/``post`` speak to it."""

    def __init__(self, store: Path, *more: str, cwd: Path | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (cwd or store.parent) / f"serve-{self.port}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [*ALAMODE, "serve", "--store", str(store), "--port", str(self.port), *more],
                cwd=cwd or store.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ},
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.process.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, "alamode serve did not start in 30 s"
                time.sleep(0.05)

    def request(
        self,
        path: str,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        body = urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(
            self.base + path, data=body, headers=headers or {}, method=method
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), dict(err.headers)

    def get(self, path: str, **headers: str) -> tuple[int, str]:
        status, text, _ = self.request(path, headers=headers)
        return status, text

    def api(self, path: str) -> Any:
        status, text = self.get("/api" + path)
        assert status == 200, text
        return json.loads(text)

    def csrf(self) -> str:
        """The CSRF token of the forms, as a page holds it."""
        plans = self.api("/plans")["plans"]
        assert plans, "no plan in the store to find a form on"
        page = self.get(f"/plans/{plans[0]['digest']}")[1]
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        return found.group(1)

    def wait_for_run(self, run_id: str, seconds: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            run: dict[str, Any] = self.api(f"/runs/{run_id}")
            if run["status"] != "running":
                return run
            assert time.monotonic() < deadline, f"run {run_id} did not end"
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
