"""The blob store, for real: moto's S3 server on 127.0.0.1 (HTTP through s3fs and botocore),
and the same suite over file:// and memory://. Each "machine" is its own local cache.

Without moto's server installed these tests skip, saying why; under CI they fail.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from a_la_mode.engines.local import LocalEngine

from a_la_mode import TaskDef, compile_plan
from a_la_mode.compile.plan import Plan
from a_la_mode.errors import StoreError
from a_la_mode.review.queries import gc_candidates, task_states, verify
from a_la_mode.run.events import Event
from a_la_mode.run.options import RunOptions
from a_la_mode.run.runner import run_plan
from a_la_mode.store.directory import open_store
from a_la_mode.store.records import Success

from .conftest import alamode, missing_service
from .netfault import Relay
from .test_cli_run import start, wait_for

BlobStore = pytest.importorskip("a_la_mode.engines.blobstore").BlobStore


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, for the whole session."""
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as err:
        missing_service(
            "moto's S3 server or s3fs is not installed", f"pip install -e '.[test]' ({err})"
        )
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "w")  # noqa: SIM115 - kept open
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, "moto's server exited at start"
            assert time.monotonic() < deadline, "moto's server did not start in 60 s"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)
    log.close()


AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, from the environment as a user's would be; never a real account."""
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"alamode-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


class Where:
    """A store URL, its options, and a way to open it as one machine (one cache)."""

    def __init__(self, url: str, options: dict[str, Any], tmp_path: Path) -> None:
        self.url, self.options, self.tmp_path = url, options, tmp_path

    def machine(self, name: str) -> Any:
        return BlobStore(self.url, self.options, cache=str(self.tmp_path / f"cache-{name}"))

    def cli(self) -> list[str]:
        return [
            f"--store-option=endpoint_url={v}"
            for k, v in self.options.items()
            if k == "endpoint_url"
        ]


@pytest.fixture(params=["s3", "file", "memory"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_server")
        return Where(f"s3://{new_bucket(endpoint)}/team", {"endpoint_url": endpoint}, tmp_path)
    if request.param == "file":
        return Where(f"file://{tmp_path}/bucket", {}, tmp_path)
    return Where(f"memory://alamode-{uuid.uuid4().hex[:8]}/team", {}, tmp_path)


@pytest.fixture
def s3(moto_server: str, tmp_path: Path) -> Where:
    return Where(f"s3://{new_bucket(moto_server)}/team", {"endpoint_url": moto_server}, tmp_path)


def pipeline(top: str = 'echo greeting; echo hello > "$ALAMODE_OUTPUT/greeting"') -> Plan:
    return compile_plan(
        {},
        [
            TaskDef("top", {"command": top}),
            TaskDef(
                "copy", {"command": 'cp "$ALAMODE_INPUT_TOP/greeting" "$ALAMODE_OUTPUT/c"'}, ["top"]
            ),
            TaskDef("join", {}, ["copy"]),
        ],
    )


def run(plan: Plan, store: Any) -> tuple[Any, dict[str, list[str]]]:
    events: list[Event] = []
    report = run_plan(plan, store, LocalEngine(), RunOptions(jobs=2), events.append)
    kinds: dict[str, list[str]] = {}
    for event in events:
        kinds.setdefault(event.kind, []).append(event.task)
    return report, kinds


# -- the suite over s3://, file:// and memory:// -----------------------------------------------


def test_one_machine_computes_and_another_skips_it_all(where: Where) -> None:
    plan = pipeline()
    report, kinds = run(plan, where.machine("a"))
    assert report.scheduler.succeeded and sorted(kinds["start"]) == ["copy", "join", "top"]
    other = where.machine("b")
    assert other.outputs.successes(plan.tasks[n]["output"] for n in plan.tasks) == {
        plan.output(n) for n in plan.tasks
    }
    report, kinds = run(plan, other)
    assert report.scheduler.succeeded and "start" not in kinds
    assert sorted(kinds["skip"]) == ["copy", "join", "top"]
    # a task downstream of what another machine made fetches it into its own cache
    extended = compile_plan(
        {},
        [
            *(TaskDef(n, plan.spec(n), list(plan.inputs(n))) for n in plan.tasks),
            TaskDef(
                "shout",
                {"command": 'tr a-z A-Z < "$ALAMODE_INPUT_COPY/c" > "$ALAMODE_OUTPUT/s"'},
                ["copy"],
            ),
        ],
    )
    report, kinds = run(extended, other)
    assert kinds["start"] == ["shout"]
    assert (other.outputs.output_path(extended.output("shout")) / "s").read_text() == "HELLO\n"


def test_the_layout_and_marker_in_the_store(where: Where) -> None:
    plan = pipeline()
    store = where.machine("a")
    run(plan, store)
    top = plan.output("top")
    marker = json.loads(store.bucket.fs.cat_file(store.bucket.key("success", top)))
    assert marker["task"] == "top" and marker["plan"] == plan.digest
    assert marker["engine"] == "local" and marker["host"] == socket.gethostname()
    assert marker["files"] == {
        "greeting": [6, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"]
    }
    assert (
        store.bucket.fs.cat_file(store.bucket.key("outputs", top, marker["upload"], "greeting"))
        == b"hello\n"
    )
    assert store.bucket.names("plans") == [plan.digest]
    assert len(store.bucket.names("logs", top)) == 1  # "greeting"
    assert store.bucket.names("leases") == []  # released once the markers are written
    assert "secret" not in json.dumps(marker).lower() and "testing" not in json.dumps(marker)


def test_markers_are_created_once_and_never_overwritten(where: Where) -> None:
    store = where.machine("a")
    key = store.bucket.key("success", "ab" * 32)
    assert store.bucket.create_only(key, b"first")
    assert not store.bucket.create_only(key, b"second")
    assert store.bucket.fs.cat_file(key) == b"first"


def test_a_runner_that_loses_the_marker_race_adopts_the_winner(where: Where) -> None:
    plan = pipeline()
    output = plan.output("top")
    finished = {}
    for name in ("winner", "loser"):  # both produced it: say the winner's lease had expired
        store = where.machine(name)
        run_id = store.begin_run(plan, "local")
        row, _ = store.ledger.begin_attempt(run_id, "top", output)
        staging = store.outputs.new_staging(output)
        (staging / "greeting").write_text(f"from the {name}\n")
        manifest = store.outputs.publish(output, staging)
        success = Success(output, "top", plan.digest, run_id, 0.1, "local", manifest)
        finished[name] = (store, [(row, 0.1, success)])
    for name in ("winner", "loser"):
        store, batch = finished[name]
        store.outputs.record_successes(batch)
    loser = finished["loser"][0]
    marker = loser.bucket.marker(output)
    assert loser.bucket.names("outputs", output) == [marker["upload"]]  # the losing upload is gone
    assert (loser.outputs.fetch(output) / "greeting").read_text() == "from the winner\n"
    assert loser.outputs.successes([output]) == {output}


def test_tasks_sharing_an_input_download_it_once(where: Where) -> None:
    """Two workers fetching one output at once: the second must find the first's copy, not
    download it again and put its own in its place while the first's task reads it."""
    plan = pipeline()
    run(plan, where.machine("a"))
    other = where.machine("b")
    downloads = []
    real = other.bucket.remote

    def slow_download(what: str, action: Any, *args: Any, **kwargs: Any) -> Any:
        if what == "download an input":
            downloads.append(args)
            time.sleep(0.3)  # widens the window the two share (a timing, not a fault)
        return real(what, action, *args, **kwargs)

    other.bucket.remote = slow_download
    with ThreadPoolExecutor(max_workers=2) as pool:
        folders = list(pool.map(lambda _: other.outputs.fetch(plan.output("top")), range(2)))
    assert folders[0] == folders[1]
    assert (folders[0] / "greeting").read_text() == "hello\n"
    assert len(downloads) == 1


def test_an_upload_without_a_marker_is_not_done_and_never_read(where: Where) -> None:
    plan = pipeline()
    crashed = where.machine("a")
    staging = crashed.outputs.new_staging(plan.output("top"))
    (staging / "greeting").write_text("half-written by a runner that died\n")
    crashed.outputs.publish(plan.output("top"), staging)  # uploaded; the marker never written
    fresh = where.machine("b")
    assert fresh.outputs.successes([plan.output("top")]) == set()
    report, kinds = run(plan, fresh)
    assert report.scheduler.succeeded and "top" in kinds["start"]
    assert (fresh.outputs.output_path(plan.output("copy")) / "c").read_text() == "hello\n"


def test_a_marker_whose_output_went_missing_or_changed_is_not_done(where: Where) -> None:
    plan = pipeline()
    store = where.machine("a")
    run(plan, store)
    top, copy = plan.output("top"), plan.output("copy")
    upload = store.bucket.key("outputs", copy, store.bucket.marker(copy)["upload"])
    store.bucket.fs.rm(upload, recursive=True)  # lost behind our back
    top_file = store.bucket.key("outputs", top, store.bucket.marker(top)["upload"], "greeting")
    store.bucket.fs.pipe_file(top_file, b"HELLO\n")  # same size, other bytes
    other = where.machine("b")
    states = {s.task: s for s in task_states(plan, other, None)}
    assert states["copy"].label == "output missing"
    bad = {(task, why) for _, task, why in verify(other, forget=True)}
    assert bad == {
        ("copy", "its output is missing from the store"),
        ("top", "its file greeting was modified"),
    }
    report, kinds = run(plan, other)
    assert report.scheduler.succeeded and sorted(kinds["start"]) == ["copy", "top"]
    assert kinds["skip"] == ["join"]  # its own marker and output are sound
    assert verify(other, forget=False) == []


def test_a_live_runner_s_lease_elsewhere_is_waited_for_until_it_expires(where: Where) -> None:
    plan = pipeline()
    store = where.machine("a")
    lease = {"host": "elsewhere", "pid": 1, "run": 1, "cache": "/x", "expires": time.time() + 2}
    store.bucket.create_only(
        store.bucket.key("leases", plan.output("top")), json.dumps(lease).encode()
    )
    began = time.monotonic()
    report, kinds = run(plan, store)
    assert report.scheduler.succeeded and kinds["wait"] == ["top"]
    assert time.monotonic() - began >= 1.5  # it waited for the expiry, then took it over
    assert sorted(kinds["start"]) == ["copy", "join", "top"]


def test_a_lease_of_this_host_whose_pid_was_reused_is_taken_over_at_once(where: Where) -> None:
    """Taken an hour ago by a runner that died; its pid now belongs to a younger process."""
    plan = pipeline()
    store = where.machine("a")
    younger = subprocess.Popen(["sleep", "60"])
    try:
        lease = {
            "host": socket.gethostname(),
            "pid": younger.pid,
            "run": 1,
            "cache": "/x",
            "taken": time.time() - 3600,
            "expires": time.time() + 3600,
        }
        store.bucket.create_only(
            store.bucket.key("leases", plan.output("top")), json.dumps(lease).encode()
        )
        report, kinds = run(plan, store)
    finally:
        younger.kill()
        younger.wait()
    assert report.scheduler.succeeded and "wait" not in kinds
    assert sorted(kinds["start"]) == ["copy", "join", "top"]


def test_gc_removes_unreachable_outputs_and_their_markers(where: Where) -> None:
    store = where.machine("a")
    old = pipeline()
    run(old, store)
    time.sleep(1.1)  # plans are ordered by their modification time, to the second on some stores
    new = pipeline('echo bonjour > "$ALAMODE_OUTPUT/greeting"')
    run(new, store)
    doomed, kept = gc_candidates(store, keep_plans=1)
    assert kept == [new.digest]
    assert sorted(doomed) == sorted(old.output(n) for n in old.tasks)
    for output in doomed:
        store.outputs.remove_output(output)
    assert set(store.outputs.recorded_outputs()) == {new.output(n) for n in new.tasks}
    assert old.output("top") not in store.outputs.stored_outputs()
    assert run(new, where.machine("b"))[1].get("start") is None


def test_gc_is_refused_while_a_live_lease_is_in_the_store(where: Where) -> None:
    store = where.machine("a")
    assert store.leases.active_runs() == []
    lease = {"host": "elsewhere", "pid": 1, "run": 7, "cache": "/x", "expires": time.time() + 60}
    store.bucket.create_only(store.bucket.key("leases", "ab" * 32), json.dumps(lease).encode())
    assert store.leases.active_runs() == [7]
    lease["expires"] = time.time() - 1
    store.bucket.fs.pipe_file(store.bucket.key("leases", "ab" * 32), json.dumps(lease).encode())
    assert store.leases.active_runs() == []  # an expired lease holds nothing


# -- S3 only: the server's semantics, processes, outages ---------------------------------------


def test_the_pinned_server_refuses_a_second_create_only_write_with_412(moto_server: str) -> None:
    import boto3
    import botocore.exceptions

    bucket = new_bucket(moto_server)
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"


COUNTED = """
tasks:
{tasks}
"""


def test_two_machines_on_one_bucket_compute_each_task_once(s3: Where, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    tasks = "\n".join(
        f"  t{i}: {{spec: {{command: 'sleep 0.2; echo t{i} >> {ledger}; "
        f'touch "$ALAMODE_OUTPUT/x"\'}}}}'
        for i in range(8)
    )
    (tmp_path / "p.yaml").write_text(COUNTED.format(tasks=tasks))
    runners = [
        start(
            tmp_path,
            *s3.cli(),
            "run",
            "p.yaml",
            "-s",
            s3.url,
            "-j",
            "2",
            env={"ALAMODE_CACHE": str(tmp_path / f"m{i}")},
        )
        for i in range(2)
    ]
    for runner in runners:
        _, stderr = runner.communicate(timeout=120)
        assert runner.returncode == 0, stderr
    lines = ledger.read_text().split()
    assert sorted(lines) == sorted(f"t{i}" for i in range(8))  # each once, in total


SLOW = """
tasks:
  a: {spec: {command: 'echo a > "$ALAMODE_OUTPUT/a"'}}
  b:
    deps: [a]
    spec:
      command: |
        touch started; while [ ! -f go ]; do sleep 0.1; done
        cat "$ALAMODE_INPUT_A/a" > "$ALAMODE_OUTPUT/b"; echo x > "$ALAMODE_OUTPUT/b2"
"""


def test_a_killed_runner_is_resumed_by_the_next_run(s3: Where, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(SLOW)
    env = {
        "ALAMODE_CACHE": str(tmp_path / "m"),
        "ALAMODE_FAULT_PAUSE": "mid-upload",
        "ALAMODE_FAULT_READY": str(tmp_path / "paused"),
    }
    runner = start(tmp_path, *s3.cli(), "run", "p.yaml", "-s", s3.url, env=env)
    plan = pipeline_of(tmp_path)
    store = s3.machine("m")
    wait_for(tmp_path / "started")
    wait_until_marked(store, plan.output("a"))
    (tmp_path / "go").touch()
    wait_for(tmp_path / "paused")  # b's first file is uploaded, the second not yet
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    assert store.outputs.successes([plan.output("a"), plan.output("b")]) == {plan.output("a")}
    again = alamode(
        *s3.cli(),
        "run",
        "p.yaml",
        "-s",
        s3.url,
        cwd=tmp_path,
        env={"ALAMODE_CACHE": str(tmp_path / "m")},
    )
    assert again.returncode == 0, again.stderr
    assert "2 tasks: 1 already done, 1 succeeded" in again.stderr  # the dead pid's lease taken over


def wait_until_marked(store: Any, output: str) -> None:
    deadline = time.monotonic() + 30
    while store.bucket.marker(output) is None:
        assert time.monotonic() < deadline, f"{output[:12]} was never marked"
        time.sleep(0.05)


def pipeline_of(folder: Path) -> Plan:
    from a_la_mode.compile.specfile import compile_spec_file

    return compile_spec_file(str(folder / "p.yaml"))


def test_an_outage_mid_run_fails_clearly_and_a_rerun_resumes(
    moto_server: str, tmp_path: Path
) -> None:
    relay = Relay(("127.0.0.1", int(moto_server.rsplit(":", 1)[1])))
    bucket = new_bucket(moto_server)
    url = f"s3://{bucket}/team"
    (tmp_path / "p.yaml").write_text(SLOW)
    env = {"ALAMODE_CACHE": str(tmp_path / "m")}
    runner = start(
        tmp_path, f"--store-option=endpoint_url={relay.url}", "run", "p.yaml", "-s", url, env=env
    )
    plan = pipeline_of(tmp_path)
    store = BlobStore(url, {"endpoint_url": moto_server}, cache=str(tmp_path / "check"))
    wait_for(tmp_path / "started")
    wait_until_marked(store, plan.output("a"))  # a is published and marked; b is running
    relay.cut()
    (tmp_path / "go").touch()
    began = time.monotonic()
    _, stderr = runner.communicate(timeout=180)
    assert runner.returncode != 0
    assert time.monotonic() - began < 120  # bounded retries, not a hang
    assert "Traceback" not in stderr
    assert "run again to resume" in stderr
    relay.restore()
    assert store.outputs.successes([plan.output("a"), plan.output("b")]) == {plan.output("a")}
    again = alamode(
        f"--store-option=endpoint_url={relay.url}",
        "run",
        "p.yaml",
        "-s",
        url,
        cwd=tmp_path,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    assert "2 tasks: 1 already done, 1 succeeded" in again.stderr


def test_push_then_run_by_url_and_read_it_back_from_another_machine(
    s3: Where, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(
        SLOW.replace("while [ ! -f go ]; do sleep 0.1; done", "echo b-log")
    )
    pushed = alamode(*s3.cli(), "push", "p.yaml", "-s", s3.url, "--json", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    url = json.loads(pushed.stdout)["url"]
    assert url.startswith(f"{s3.url}/plans/")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = alamode(*s3.cli(), "run", url, cwd=elsewhere, env={"ALAMODE_CACHE": str(tmp_path / "m1")})
    assert ran.returncode == 0, ran.stderr  # the store is the one the plan lies in
    assert "2 tasks: 0 already done, 2 succeeded" in ran.stderr
    other = {"ALAMODE_CACHE": str(tmp_path / "m2")}
    status = json.loads(
        alamode(*s3.cli(), "status", url, "--json", cwd=elsewhere, env=other).stdout
    )
    assert {row["label"] for row in status} == {"done"}
    log = alamode(*s3.cli(), "log", "b", "-s", s3.url, cwd=elsewhere, env=other)
    assert log.returncode == 0 and log.stdout == "b-log\n"
    tree = json.loads(
        alamode(
            *s3.cli(), "provenance", "b", "-s", s3.url, "--json", cwd=elsewhere, env=other
        ).stdout
    )
    assert tree["task"] == "b" and tree["inputs"][0]["name"] == "a"
    verified = alamode(*s3.cli(), "verify", "-s", s3.url, cwd=elsewhere, env=other)
    assert verified.returncode == 0, verified.stderr


def test_bad_store_urls_are_one_line_errors(moto_server: str, tmp_path: Path) -> None:
    missing = alamode(
        f"--store-option=endpoint_url={moto_server}",
        "history",
        "-s",
        "s3://no-such-bucket/x",
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        "error: store s3://no-such-bucket/x: bucket 'no-such-bucket' does not exist"
    )
    unknown = alamode("history", "-s", "ftp9://host/x", cwd=tmp_path)
    assert unknown.returncode == 2 and "no store plugin for ftp9://" in unknown.stderr
    with pytest.raises(StoreError, match="it takes no --store-option"):
        open_store(str(tmp_path / "dir"), {"endpoint_url": moto_server})
    assert not any("Traceback" in r.stderr for r in (missing, unknown))


def test_no_credentials_or_endpoints_are_written_to_the_store(s3: Where) -> None:
    store = s3.machine("a")
    run(pipeline(), store)
    everything = b"".join(
        store.bucket.fs.cat_file(key) for key in store.bucket.fs.find(store.bucket.base)
    )
    assert AWS["AWS_SECRET_ACCESS_KEY"].encode() not in everything
    assert b"127.0.0.1" not in everything
