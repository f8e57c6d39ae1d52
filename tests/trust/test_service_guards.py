"""The service under hostile requests: one-line 4xx, never a 500; bounded bodies; streams
that do not starve the pages; the Host names it answers to; cancel then run; secrets kept
out of child runs' argv."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import alamode
from tests.service import Service

pytest.importorskip("starlette", reason="pip install -e '.[test]'")

FLOW = """
tasks:
  slow: {spec: {command: 'sleep 30; touch "$ALAMODE_OUTPUT/f"'}}
  quick: {spec: {command: 'touch "$ALAMODE_OUTPUT/f"'}}
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    (tmp_path / "flow.yaml").write_text(FLOW)
    assert alamode("run", "flow.yaml", "--target", "quick", "--store", "store", cwd=tmp_path)
    plan = json.loads(alamode("show", "flow.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    service = Service(tmp_path / "store")
    yield service, plan
    service.stop()


def raw(port: int, head: str, body: bytes = b"", host: str = "127.0.0.1") -> tuple[int, str]:
    """Send bytes as a client would, header bytes not limited to ASCII; the status and
    the body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        request = head.replace("{host}", f"{host}:{port}").encode("latin-1") + b"\r\n\r\n"
        connection.sendall(request + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")


def test_non_ascii_tokens_and_bad_since_are_one_line_4xx(
    served: tuple[Service, str], tmp_path: Path
) -> None:
    service, plan = served
    post = f"POST /plans/{plan}/run HTTP/1.1\r\nHost: {{host}}\r\nConnection: close\r\n"
    body = "csrf=é&task=quick".encode()
    form = f"{post}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}"
    status, text = raw(service.port, form, body)
    assert status == 403 and text.startswith("error: the form's CSRF token")
    status, text = raw(service.port, f"{post}X-CSRF-Token: é\r\nContent-Length: 0")
    assert status == 403 and "Traceback" not in text
    status, text = service.get("/runs/0123456789ab/events?since=abc")
    assert status in (400, 404) and "\n" not in text.strip()
    started = service.request(
        f"/plans/{plan}/run", {"csrf": service.csrf(), "task": "quick"},
        headers={"Accept": "application/json"},
    )  # fmt: skip
    run = json.loads(started[1])["id"]
    status, text = service.get(f"/runs/{run}/events?since=abc")
    assert status == 400 and text.startswith("error: since='abc'")
    token = tmp_path / "token"
    token.write_text("a token of more than sixteen characters\n")
    guarded = Service(tmp_path / "store", "--token-file", str(token))
    try:
        for head in (
            "GET /?token=%C3%A9 HTTP/1.1\r\nHost: {host}\r\nConnection: close",
            "GET / HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer é\r\nConnection: close",
        ):
            status, text = raw(guarded.port, head)
            assert status == 401 and text.startswith("error: this service needs its token")
    finally:
        guarded.stop()
    assert "Traceback" not in service.log.read_text()


def test_a_huge_post_is_refused_before_it_is_read(served: tuple[Service, str]) -> None:
    service, plan = served
    head = (
        f"POST /plans/{plan}/run HTTP/1.1\r\nHost: {{host}}\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 300000000"
    )
    started = time.monotonic()
    status, text = raw(service.port, head, b"csrf=x&" + b"a" * 100_000)
    assert status == 413 and text.startswith("error: a form of this service is under")
    assert time.monotonic() - started < 10  # answered without waiting for 300 MB
    chunked = (
        f"POST /plans/{plan}/run HTTP/1.1\r\nHost: {{host}}\r\nConnection: close\r\n"
        "Transfer-Encoding: chunked"
    )
    piece = b"a" * 65536
    body = (b"%x\r\n" % len(piece) + piece + b"\r\n") * 4 + b"0\r\n\r\n"
    status, _ = raw(service.port, chunked, body)
    assert status == 413


def test_many_live_streams_do_not_starve_the_pages(served: tuple[Service, str]) -> None:
    service, plan = served
    started = service.request(
        f"/plans/{plan}/run", {"csrf": service.csrf(), "task": "slow"},
        headers={"Accept": "application/json"},
    )  # fmt: skip
    run = json.loads(started[1])["id"]
    streams = []
    try:
        for _ in range(60):
            connection = socket.create_connection(("127.0.0.1", service.port), timeout=30)
            request = f"GET /runs/{run}/events HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n\r\n"
            connection.sendall(request.encode())
            streams.append(connection)
        for connection in streams:  # each stream has been answered (its headers came)
            assert connection.recv(12).startswith(b"HTTP/1.1 200")
        began = time.monotonic()
        status, _ = service.get("/static/style.css")
        assert status == 200 and time.monotonic() - began < 5
        assert service.get(f"/plans/{plan}")[0] == 200
    finally:
        for connection in streams:
            connection.close()
        service.request(f"/runs/{run}/cancel", {"csrf": service.csrf()})


def test_cancel_then_run_starts_a_new_run(served: tuple[Service, str]) -> None:
    service, plan = served
    csrf = service.csrf()
    accept = {"Accept": "application/json"}
    first = json.loads(service.request(f"/plans/{plan}/run", {"csrf": csrf}, accept)[1])["id"]
    deadline = time.monotonic() + 30
    while not service.api(f"/runs/{first}")["events"]:  # under way
        assert time.monotonic() < deadline
        time.sleep(0.05)
    service.request(f"/runs/{first}/cancel", {"csrf": csrf}, accept)
    second = json.loads(service.request(f"/plans/{plan}/run", {"csrf": csrf}, accept)[1])["id"]
    assert second != first
    assert service.wait_for_run(first)["status"] == "interrupted"
    service.request(f"/runs/{second}/cancel", {"csrf": csrf}, accept)
    service.wait_for_run(second)


def test_bound_to_every_interface_it_answers_to_this_machine_only(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    token = tmp_path / "token"
    token.write_text("a token of more than sixteen characters\n")
    service = Service(
        tmp_path / "store", "--host", "0.0.0.0", "--token-file", str(token),
        "--allow-host", "pipelines.example.org",
    )  # fmt: skip
    try:
        name = socket.gethostname()
        for host in (name, "127.0.0.1", "pipelines.example.org"):
            status, _ = raw(
                service.port, "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close", host=host
            )
            assert status == 401, host  # it answers (and asks for its token)
        status, text = raw(
            service.port, "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close", host="evil.example"
        )
        assert status == 421 and "Host header" in text
    finally:
        service.stop()


def test_store_options_reach_child_runs_outside_their_argv(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    store = f"file://{tmp_path}/bucket"
    secret = "s3cr3t-value-for-the-test"
    ran = alamode(
        "-O",
        "auto_mkdir=true",
        "run",
        "flow.yaml",
        "--target",
        "quick",
        "--store",
        store,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    plan = json.loads(alamode("show", "flow.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    service = Service(
        tmp_path / "unused",
        "--store",
        store,
        "-O",
        "auto_mkdir=true",
        "-O",
        f"note={secret}",
        cwd=tmp_path,
    )
    try:
        status, text, _ = service.request(
            f"/plans/{plan}/run",
            {"csrf": service.csrf(), "task": "slow"},
            headers={"Accept": "application/json"},
        )
        assert status == 202, text
        deadline = time.monotonic() + 30
        children = []
        while not children:
            assert time.monotonic() < deadline
            children = [
                pid
                for pid in os.listdir("/proc")
                if pid.isdigit()
                and b"--json" in Path(f"/proc/{pid}/cmdline").read_bytes()
                and str(service.process.pid) == Path(f"/proc/{pid}/stat").read_text().split()[3]
            ]
        argv = Path(f"/proc/{children[0]}/cmdline").read_bytes()
        assert secret.encode() not in argv and b"--store-option" not in argv
        env = Path(f"/proc/{children[0]}/environ").read_bytes()
        assert secret.encode() in env
    finally:
        service.stop()
