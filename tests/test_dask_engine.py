"""The Dask engine, for real: a ``dask scheduler`` process and two ``dask worker`` processes
on 127.0.0.1, each worker with a cache directory of its own (as if on another machine), and
the store on moto's S3 server. The runner shares no filesystem with the workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, alamode, events_of, missing_service
from tests.test_blobstore import AWS, aws_credentials, free_port, moto_server, new_bucket
from tests.test_cli_run import start

__all__ = ["aws_credentials", "moto_server"]  # fixtures, used by name

distributed = pytest.importorskip("distributed", reason="pip install -e '.[test]'")

EXAMPLE = ROOT / "examples" / "cluster"  # docs/cluster.md's worked example

# A job that takes its worker down is given up after its second worker.
SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}


class Cluster:
    """A scheduler and two workers, as processes; ``restart`` is not needed: each worker
    runs under a nanny, which starts it again if it dies."""

    def __init__(
        self, folder: Path, workers: tuple[str, ...] = ("w1", "w2"), threads: int = 1
    ) -> None:
        self.folder = folder
        self.names, self.threads = workers, threads
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []

    def start(self) -> None:
        env = {**os.environ, **AWS, **SCHEDULER_ENV}
        self._spawn(
            "scheduler",
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
            env,
        )  # fmt: skip
        for name in self.names:
            cache = self.folder / f"cache-{name}"
            self._spawn(
                name,
                ["distributed.cli.dask_worker", self.address, "--nthreads", str(self.threads),
                 "--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                 "--name", name],
                {**env, "ALAMODE_CACHE": str(cache), "PYTHONPATH": str(EXAMPLE)},
            )  # fmt: skip
        self.wait_for_workers(len(self.names))

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed by stop()
        self.logs.append(log)
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,  # so workers can import tests.fixtures (a function task's module)
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    def workers(self) -> dict[str, Any]:
        with distributed.Client(self.address, timeout="10s") as client:
            info: dict[str, Any] = client.scheduler_info()["workers"]
            return info

    def pids(self) -> set[int]:
        with distributed.Client(self.address, timeout="10s") as client:
            return set(client.run(os.getpid).values())

    def wait_for_workers(self, count: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if len(self.workers()) >= count:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{count} dask workers did not start"
            time.sleep(0.3)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        import distributed.cli.dask_worker  # noqa: F401
    except ImportError as err:
        missing_service("dask.distributed is not installed", f"pip install -e '.[test]' ({err})")
    running = Cluster(tmp_path_factory.mktemp("dask"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def store(moto_server: str) -> list[str]:
    """A fresh bucket: the ``--store`` arguments that name it."""
    url = f"s3://{new_bucket(moto_server)}/team"
    return ["--store", url, f"--store-option=endpoint_url={moto_server}"]


def bucket_json(store: list[str], key: str) -> Any:
    import boto3

    url, endpoint = store[1], store[2].split("=", 2)[2]
    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read())


def uploads(store: list[str], output: str) -> list[str]:
    import boto3

    url, endpoint = store[1], store[2].split("=", 2)[2]
    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/outputs/{output}/")
    return sorted({item["Key"].split("/")[-2] for item in listed.get("Contents", [])})


FAN = """
tasks:
  words: {spec: {command: 'printf "a b a c\\n" > "$ALAMODE_OUTPUT/words"; echo made words'}}
  upper: {deps: [words], spec: {command: 'sleep 0.5; tr a-z A-Z < "$ALAMODE_INPUT_WORDS/words" > "$ALAMODE_OUTPUT/w"'}}
  count: {deps: [words], spec: {command: 'sleep 0.5; wc -w < "$ALAMODE_INPUT_WORDS/words" > "$ALAMODE_OUTPUT/w"'}}
  twin: {deps: [words], spec: {command: 'sleep 0.5; wc -w < "$ALAMODE_INPUT_WORDS/words" > "$ALAMODE_OUTPUT/w"'}}
  both: {deps: [upper, count], spec: {command: 'cat "$ALAMODE_INPUT_UPPER/w" "$ALAMODE_INPUT_COUNT/w" > "$ALAMODE_OUTPUT/both"'}}
"""  # noqa: E501


def start_and_wait(
    tmp_path: Path, spec: str, store: list[str], cluster: Cluster, pids: Path
) -> tuple[subprocess.Popen[str], int]:
    """``alamode run SPEC`` on the cluster, once its command has written the number it
    writes into a file in ``pids``: the runner, and that number."""
    runner = start(
        tmp_path, "run", spec, *store, "--engine", "dask", "--scheduler", cluster.address,
        "--json",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(pids.iterdir()):
        assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()
        time.sleep(0.1)
    return runner, int(next(pids.iterdir()).read_text())


def test_a_plan_runs_on_the_workers_and_they_publish_to_the_store(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    (tmp_path / "fan.yaml").write_text(FAN)
    client_cache = tmp_path / "client-cache"
    env = {"ALAMODE_CACHE": str(client_cache)}
    args = ["run", "fan.yaml", *store, "--engine", "dask", "--scheduler", cluster.address]
    done = alamode(*args, "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    started = [e["task"] for e in events if e["event"] == "start"]
    assert sorted(started) == ["both", "count", "upper", "words"]  # the twin ran once, as count
    both = alamode("cat", "fan.yaml", "both", "both", *store, cwd=tmp_path, env=env)
    assert both.stdout.split() == ["A", "B", "A", "C", "4"]
    # The workers published, and each marker names the worker that did.
    workers = set(cluster.workers())
    outputs = {e["task"]: e["output"] for e in events if e["event"] == "succeed"}
    for output in outputs.values():
        assert bucket_json(store, f"success/{output}")["worker"] in workers
    # The runner never held an output: it fetched one only for 'cat'.
    held = sorted(p.name for p in (client_cache / "outputs").iterdir())
    assert held == [outputs["both"]]
    # Its history has the run, and the logs came back from the workers.
    log = alamode("log", "words", *store, cwd=tmp_path, env=env)
    assert log.stdout == "made words\n"
    again = alamode(*args, "--json", cwd=tmp_path, env=env)
    assert [e["event"] for e in events_of(again.stdout)].count("start") == 0


def test_a_worker_killed_mid_task_does_not_stop_the_run_or_publish_twice(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    (tmp_path / "slow.yaml").write_text(
        "tasks:\n  slow: {spec: {command: 'echo $PPID > "
        f'{pids}/$$; sleep 2; echo done > "$ALAMODE_OUTPUT/r"\'}}}}\n'
    )
    runner, worker_pid = start_and_wait(tmp_path, "slow.yaml", store, cluster, pids)
    os.kill(worker_pid, signal.SIGKILL)  # the worker process running the task
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    assert len(list(pids.iterdir())) == 2  # it ran again elsewhere
    output = next(e["output"] for e in events_of(out) if e["event"] == "succeed")
    assert len(uploads(store, output)) == 1  # and was published once
    cluster.wait_for_workers(2)  # the nanny restarted the killed one
    marker = bucket_json(store, f"success/{output}")
    assert marker["worker"] in cluster.workers()  # a live worker published it


def test_a_task_that_kills_its_workers_fails_with_the_reason(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text("tasks:\n  bomb: {spec: {command: 'kill -9 $PPID'}}\n")
    done = alamode(
        "run", "bad.yaml", *store, "--engine", "dask", "--scheduler", cluster.address,
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    failed = [e for e in events_of(done.stdout) if e["event"] == "fail"]
    assert failed and "dask gave up on it" in failed[0]["detail"]
    cluster.wait_for_workers(2)


def test_ctrl_c_cancels_the_run_and_publishes_nothing(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    (tmp_path / "long.yaml").write_text(
        f"tasks:\n  long: {{spec: {{command: 'echo $$ > {pids}/$$; sleep 60; "
        'echo late > "$ALAMODE_OUTPUT/r"\'}}\n'
    )
    runner, command_pid = start_and_wait(tmp_path, "long.yaml", store, cluster, pids)
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    deadline = time.monotonic() + 10
    while _alive(command_pid):  # the command on the worker was ended
        assert time.monotonic() < deadline, "the command still runs on its worker"
        time.sleep(0.1)
    status = alamode("status", "long.yaml", *store, "--json", cwd=tmp_path)
    [row] = json.loads(status.stdout)
    assert row["label"] != "done" and "interrupted" in row["reason"], row


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text().split()
    return stat[2] != "Z"


def test_a_function_task_runs_natively_on_a_worker(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    (tmp_path / "flow.py").write_text(
        "from a_la_mode import Dag\n"
        "from tests.fixtures.dask_tasks import count_words\n"
        "dag = Dag()\n"
        "text = dag.task('text', {'command': 'printf \"x y x\" > $ALAMODE_OUTPUT/t'})\n"
        "dag.function(count_words, name='count', deps=[text])\n"
    )
    env = {"PYTHONPATH": str(ROOT)}
    done = alamode(
        "run", "flow.py", *store, "--engine", "dask", "--scheduler", cluster.address,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    counted = alamode("cat", "flow.py", "count", "counts.json", *store, cwd=tmp_path, env=env)
    assert json.loads(counted.stdout) == {"x": 2, "y": 1}
    # called in the worker's own process: the worker's pid, not a child's
    pid = alamode("cat", "flow.py", "count", "pid", *store, cwd=tmp_path, env=env).stdout
    assert int(pid) in cluster.pids()


def test_without_a_scheduler_a_local_cluster_runs_the_plan(tmp_path: Path) -> None:
    (tmp_path / "fan.yaml").write_text(FAN)
    store = ["--store", f"file://{tmp_path}/shared-{uuid.uuid4().hex[:6]}"]
    done = alamode("run", "fan.yaml", *store, "--engine", "dask", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 tasks: 0 already done, 5 succeeded" in done.stderr


def test_a_directory_store_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "fan.yaml").write_text(FAN)
    done = alamode("run", "fan.yaml", "--engine", "dask", cwd=tmp_path)
    assert done.returncode == 2
    assert "reach the store themselves" in done.stderr and "--store s3://" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".alamode").exists()


def test_the_worked_example_of_the_docs_runs_on_the_cluster(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    """docs/cluster.md: its function task is called on a worker, which imports ``tasks``
    from the example's folder on its PYTHONPATH."""
    spec = str(EXAMPLE / "pipeline.py")
    on_cluster = {"DASK_SCHEDULER_ADDRESS": cluster.address}  # instead of --scheduler
    done = alamode("run", spec, *store, "--engine", "dask", "--json", cwd=tmp_path, env=on_cluster)
    assert done.returncode == 0, done.stdout + done.stderr
    report = alamode("cat", spec, "report", *store, cwd=tmp_path)
    assert report.stdout == "3 the\n2 cat\n2 sat\n"
    output = alamode("path", spec, "count", *store, cwd=tmp_path).stdout.strip().split("/")[-1]
    tree = alamode("provenance", output, *store, cwd=tmp_path, env={"COLUMNS": "300"})
    assert "by worker tcp://127.0.0.1:" in tree.stdout


def test_a_local_cluster_listens_on_loopback_only(tmp_path: Path) -> None:
    """Every socket the cluster started for a run listens on, in this process (the
    scheduler) and in its worker processes, is on 127.0.0.1."""
    import psutil
    from a_la_mode.engines.dask_engine import DaskEngine

    engine = DaskEngine()
    engine.check()
    engine.prepare({})
    try:
        here = psutil.Process()
        listening = [
            conn.laddr
            for process in (here, *here.children(recursive=True))
            for conn in process.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        ]
        workers = engine.client.scheduler_info()["workers"]
        assert len(listening) >= 1 + len(workers)  # the scheduler's, and each worker's
        assert {address.ip for address in listening} == {"127.0.0.1"}, listening
        assert engine.parallelism(None) == len(workers)  # a thread per worker
    finally:
        engine.close()


def test_force_makes_an_output_again_on_a_worker_and_replaces_its_marker(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    (tmp_path / "fan.yaml").write_text(FAN)
    args = ["run", "fan.yaml", *store, "--engine", "dask", "--scheduler", cluster.address]
    first = alamode(*args, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    words = next(e["output"] for e in events_of(first.stdout) if e["task"] == "words")
    before = bucket_json(store, f"success/{words}")["upload"]
    again = alamode(*args, "--force", "words", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [e["task"] for e in events_of(again.stdout) if e["event"] == "start"] == ["words"]
    marker = bucket_json(store, f"success/{words}")
    assert marker["upload"] != before and marker["worker"] in cluster.workers()


def test_a_scheduler_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "fan.yaml").write_text(FAN)
    nobody = f"tcp://127.0.0.1:{free_port()}"
    store = ["--store", f"file://{tmp_path}/shared"]
    done = alamode("run", "fan.yaml", *store, "--engine", "dask", "--scheduler", nobody,
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the scheduler at {nobody}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "shared" / "success").exists()  # nothing recorded


def test_a_function_task_on_a_local_cluster_needs_no_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(
        "from pathlib import Path\n\n\n"
        "def hello(output: Path, inputs: dict[str, Path]) -> None:\n"
        "    (output / 'f').write_text('hi\\n')\n"
    )
    (tmp_path / "flow.py").write_text(
        "from a_la_mode import Dag\nfrom tasks import hello\ndag = Dag()\ndag.function(hello)\n"
    )
    store = ["--store", f"file://{tmp_path}/bucket"]
    env = {"PYTHONPATH": ""}  # as a new user has it: nothing set
    done = alamode("run", "flow.py", *store, "--engine", "dask", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert alamode("cat", "flow.py", "hello", *store, cwd=tmp_path).stdout == "hi\n"


def test_a_worker_task_that_changes_its_input_fails(
    cluster: Cluster, store: list[str], tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(
        """
tasks:
  raw: {spec: {command: 'echo good > "$ALAMODE_OUTPUT/data"'}}
  spoil:
    deps: [raw]
    spec: {command: 'chmod -R u+w "$ALAMODE_INPUT_RAW"; echo bad > "$ALAMODE_INPUT_RAW/data"'}
"""
    )
    done = alamode(
        "run", "p.yaml", *store, "--engine", "dask", "--scheduler", cluster.address, cwd=tmp_path
    )
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "it changed its input raw (its file data was modified)" in said
    assert "this worker's copy of it was dropped, the store's is intact" in said
    assert alamode("cat", "p.yaml", "raw", *store, cwd=tmp_path).stdout == "good\n"


def test_the_scheduler_killed_mid_run_is_one_clear_line(
    moto_server: str, store: list[str], tmp_path: Path
) -> None:
    own = Cluster(tmp_path / "own")
    (tmp_path / "own").mkdir()
    own.start()
    try:
        (tmp_path / "p.yaml").write_text(
            "tasks:\n"
            "  a: {spec: {command: 'sleep 30; touch $ALAMODE_OUTPUT/f'}}\n"
            "  b: {spec: {command: 'sleep 31; touch $ALAMODE_OUTPUT/f'}}\n"
        )
        runner = start(
            tmp_path, "run", "p.yaml", *store, "--engine", "dask", "--scheduler", own.address
        )
        deadline = time.monotonic() + 60
        while not any(info.get("executing") for info in _tasks_of(own)):
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.2)
        own.processes[0].kill()  # the scheduler, kill -9
        out, err = runner.communicate(timeout=120)
        assert runner.returncode == 1
        assert "lost the connection to the Dask scheduler" in out + err
        assert "Traceback" not in err and "CancelledError" not in err
        assert len(err.splitlines()) == 1, err
    finally:
        own.stop()


def _tasks_of(cluster: Cluster) -> list[dict[str, Any]]:
    """What each worker is executing, as the scheduler tells."""
    with distributed.Client(cluster.address, timeout="10s") as client:
        counts = client.run(lambda dask_worker: {"executing": len(dask_worker.state.executing)})
        return list(counts.values())


def test_two_runners_of_one_output_on_one_worker_never_share_its_folder(
    moto_server: str, store: list[str], tmp_path: Path
) -> None:
    """The first runner's lease expires under its live worker; a runner of another machine
    takes the output over and sends it to the same (two-thread) worker. Both commands would
    publish at the same moment into the worker's one folder for that output."""
    (tmp_path / "own").mkdir()
    own = Cluster(tmp_path / "own", workers=("only",), threads=2)
    own.start()
    runners: list[subprocess.Popen[str]] = []
    try:
        go = tmp_path / "go"
        (tmp_path / "p.yaml").write_text(
            "tasks:\n  slow: {spec: {command: '"
            f"while [ ! -f {go} ]; do sleep 0.05; done; "
            "for i in 1 2 3 4 5 6; do head -c 4000000 /dev/zero > $ALAMODE_OUTPUT/part$i; "
            "cat /proc/sys/kernel/random/uuid >> $ALAMODE_OUTPUT/part$i; done"
            "'}}\n"
        )
        args = ["run", "p.yaml", *store, "--engine", "dask", "--scheduler", own.address]
        runners.append(start(tmp_path, *args, env={"ALAMODE_LEASE_SECONDS": "1"}))
        deadline = time.monotonic() + 90
        while sum(info["executing"] for info in _tasks_of(own)) < 1:
            assert time.monotonic() < deadline and runners[0].poll() is None
            time.sleep(0.1)
        plan = json.loads(alamode("show", "p.yaml", "--json", cwd=tmp_path).stdout)
        lease = f"leases/{plan['tasks']['slow']['output']}"
        while bucket_json(store, lease)["expires"] > time.time():  # held for 1 s only
            assert time.monotonic() < deadline
            time.sleep(0.05)
        other = {"ALAMODE_CACHE": str(tmp_path / "other-machine")}
        runners.append(start(tmp_path, *args, env=other))  # takes the expired lease over
        while sum(info["executing"] for info in _tasks_of(own)) < 2:  # both on the worker
            assert time.monotonic() < deadline and runners[1].poll() is None
            time.sleep(0.1)
        go.touch()  # both finish at once: they would publish at the same moment
        results = [runner.communicate(timeout=120) for runner in runners]
        assert [runner.returncode for runner in runners] == [0, 0], results
        assert all("No such file" not in out + err for out, err in results)
        assert len(uploads(store, plan["tasks"]["slow"]["output"])) == 1  # one upload, whole
        assert alamode("verify", *store, cwd=tmp_path).returncode == 0
    finally:
        go.touch()
        for runner in runners:
            if runner.poll() is None:
                runner.kill()
                runner.communicate()
        own.stop()
