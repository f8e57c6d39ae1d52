"""The docker engine against a real Docker daemon and a test image built from busybox.

Without a daemon these tests skip, saying why; under CI (.ci/run starts dockerd) they fail.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from a_la_mode.run.engine import EngineError, Job
from a_la_mode.run.processes import start_ticks
from a_la_mode.store.directory import LocalStore

from .conftest import ROOT, alamode, missing_service, shell
from .test_cli_run import spec, start

docker = pytest.importorskip("docker", reason="the docker extra: pip install 'a-la-mode[docker]'")
from a_la_mode.engines import docker_engine  # noqa: E402  (needs the SDK checked above)

IMAGE = "alamode-test:busybox"


@pytest.fixture(scope="session")
def daemon() -> docker.DockerClient:
    """A daemon that answers, with the test image (built here if it is missing)."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        why = str(err).splitlines()[0]
    else:
        return with_test_image(client)
    # docker-py leaves a failed connection's socket open; let it be collected quietly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    missing_service("no Docker daemon", f"start dockerd ({why})")


def with_test_image(client: docker.DockerClient) -> docker.DockerClient:
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        subprocess.run([ROOT / "tests" / "docker" / "build-test-image", IMAGE], check=True)
    return client


# Containers this test session starts carry this label too: another suite on the same
# daemon neither counts nor removes them, nor they its.
SESSION = f"a_la_mode.test-session={uuid.uuid4().hex}"


def our_containers(client: docker.DockerClient, every: bool = True) -> list[str]:
    """Every container this test session's runners started and did not remove."""
    containers = client.containers.list(all=every, filters={"label": SESSION})
    return [str(c.id) for c in containers]


@pytest.fixture
def client(
    daemon: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[docker.DockerClient]:
    monkeypatch.setenv("ALAMODE_DOCKER_LABELS", SESSION)
    yield daemon
    for container in daemon.containers.list(all=True, filters={"label": SESSION}):
        container.remove(force=True)  # so that one test's leftovers cannot fail the next


def run_docker(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return alamode("run", "--engine", "docker", *args, cwd=tmp_path)


def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / ".alamode")


PIPELINE = f"""
tasks:
  a:
    spec:
      image: {IMAGE}
      env: {{GREETING: hello}}
      command: |
        echo "$GREETING" > "$ALAMODE_OUTPUT/a"
        echo "$ALAMODE_OUTPUT" > "$ALAMODE_OUTPUT/where"
        id -u > "$ALAMODE_OUTPUT/uid"; id -g > "$ALAMODE_OUTPUT/gid"
        echo to-the-log; echo err >&2
  b:
    deps: [a]
    spec:
      image: {IMAGE}
      command: |
        cat "$ALAMODE_INPUT_A/a" > "$ALAMODE_OUTPUT/b"
        echo "$ALAMODE_INPUTS" > "$ALAMODE_OUTPUT/inputs"
        ls /sys/class/net > "$ALAMODE_OUTPUT/nets"
        grep CapEff /proc/self/status > "$ALAMODE_OUTPUT/caps"
        ls /var/run/docker.sock > "$ALAMODE_OUTPUT/socket" 2>&1 || true
"""


def test_outputs_made_in_containers_land_in_the_store_and_reruns_skip(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    result = run_docker(tmp_path, spec(tmp_path, PIPELINE))
    assert result.returncode == 0, result.stderr
    assert "2 succeeded" in result.stderr
    the_store = store(tmp_path)
    outputs = {
        row["task"]: the_store.outputs.output_path(row["output"])
        for row in the_store.ledger.history(None, 9)
    }
    a, b = outputs["a"], outputs["b"]
    assert (a / "a").read_text() == "hello\n" and (b / "b").read_text() == "hello\n"
    # the ALAMODE_* variables name the paths inside the container
    assert (a / "where").read_text() == "/alamode/output\n"
    assert json.loads((b / "inputs").read_text()) == {"a": "/alamode/inputs/a"}
    # the command ran as the invoking user, whose files they are
    assert (a / "uid").read_text() == f"{os.getuid()}\n"
    assert (a / "gid").read_text() == f"{os.getgid()}\n"
    assert {p.stat().st_uid for p in a.iterdir()} == {os.getuid()}
    # safe by default: no network but loopback, no capabilities, no Docker socket
    assert (b / "nets").read_text() == "lo\n"
    assert (b / "caps").read_text().split() == ["CapEff:", "0000000000000000"]
    assert "No such file or directory" in (b / "socket").read_text()
    assert set(alamode("log", "a", cwd=tmp_path).stdout.splitlines()) == {"to-the-log", "err"}
    assert our_containers(client) == []
    again = run_docker(tmp_path, "p.yaml")
    assert again.returncode == 0 and "2 tasks: 2 already done" in again.stderr


def test_one_changed_spec_reruns_only_its_cone(tmp_path: Path, client: docker.DockerClient) -> None:
    run_docker(tmp_path, spec(tmp_path, PIPELINE))
    spec(tmp_path, PIPELINE.replace("hello", "bonjour"))
    result = run_docker(tmp_path, "p.yaml")
    assert result.returncode == 0, result.stderr
    assert "2 tasks: 0 already done, 2 succeeded" in result.stderr  # a changed, so b did
    spec(tmp_path, PIPELINE.replace("hello", "bonjour").replace("|| true", "|| :"))
    result = run_docker(tmp_path, "p.yaml")
    assert "2 tasks: 1 already done, 1 succeeded" in result.stderr  # only b changed


def test_a_network_is_given_only_when_the_spec_asks(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    networked = f"""
tasks:
  net:
    spec: {{image: {IMAGE}, network: bridge, command: 'ls /sys/class/net > "$ALAMODE_OUTPUT/n"'}}
"""
    assert run_docker(tmp_path, spec(tmp_path, networked)).returncode == 0
    output = store(tmp_path).ledger.history("net", 1)[0]["output"]
    assert "eth0" in (store(tmp_path).outputs.output_path(output) / "n").read_text().split()


def test_an_input_cannot_be_written_to(tmp_path: Path, client: docker.DockerClient) -> None:
    vandal = PIPELINE.replace(
        'cat "$ALAMODE_INPUT_A/a" > "$ALAMODE_OUTPUT/b"\n',
        'set -e; touch "$ALAMODE_INPUT_A/new"; cat "$ALAMODE_INPUT_A/a" > "$ALAMODE_OUTPUT/b"\n',
    )
    result = run_docker(tmp_path, spec(tmp_path, vandal))
    assert result.returncode == 1
    assert "FAILED  b" in result.stdout and "exited with status 1" in result.stdout
    assert "Read-only file system" in alamode("log", "b", cwd=tmp_path).stdout
    the_store = store(tmp_path)
    assert [
        row["task"] for row in the_store.ledger.history(None, 9) if row["status"] == "succeeded"
    ] == ["a"]
    assert not (
        the_store.outputs.output_path(the_store.ledger.history("a", 1)[0]["output"]) / "new"
    ).exists()
    assert our_containers(client) == []


FAILING = f"""
tasks:
  exits:
    spec: {{image: {IMAGE}, command: 'echo partial > "$ALAMODE_OUTPUT/x"; echo bad; exit 3'}}
  hangs: {{spec: {{image: {IMAGE}, timeout: 1, command: 'touch "$ALAMODE_OUTPUT/x"; sleep 60'}}}}
  hogs:
    spec:
      image: {IMAGE}
      memory: 16m
      command: 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${{#x}} > "$ALAMODE_OUTPUT/x"'
"""


def test_exit_timeout_and_oom_each_record_no_success(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    began = time.monotonic()
    result = run_docker(tmp_path, spec(tmp_path, FAILING), "-k", "--json")
    assert result.returncode == 1
    assert time.monotonic() - began < 50  # the 60 s sleep was cut short by the timeout
    failed = {
        e["task"]: e["detail"]
        for e in map(json.loads, result.stdout.splitlines())
        if e["event"] == "fail"
    }
    assert failed == {
        "exits": "exited with status 3",
        "hangs": "timed out",
        "hogs": "killed for running out of memory (its 'memory' limit)",
    }
    the_store = store(tmp_path)
    assert the_store.outputs.recorded_outputs() == {} and the_store.outputs.stored_outputs() == []
    history = {row["task"]: row for row in the_store.ledger.history(None, 9)}
    assert history["hogs"]["oom_killed"] == 1 and history["hangs"]["timed_out"] == 1
    assert "bad" in alamode("log", "exits", cwd=tmp_path).stdout
    assert "timed out after 1 s" in alamode("log", "hangs", cwd=tmp_path).stdout
    status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    reasons = {row["task"]: row["reason"] for row in status}
    assert reasons["hogs"].startswith("killed for running out of memory")
    assert our_containers(client) == []


def test_bad_input_is_refused_before_any_task_starts(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    no_image = "tasks:\n  a: {spec: {command: 'true'}}\n"
    result = run_docker(tmp_path, spec(tmp_path, no_image))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: task 'a' has no 'image' key; give it one, or compile with --default-image "
        "IMAGE (alamode encode or alamode run SPEC)"
    )
    assert run_docker(tmp_path, "p.yaml", "--default-image", IMAGE).returncode == 0
    missing = "tasks:\n  a: {spec: {image: 'alamode-test:absent', command: 'true'}}\n"
    result = run_docker(tmp_path, spec(tmp_path, missing))
    assert result.returncode == 2
    assert "image 'alamode-test:absent' (task 'a') is not present locally" in result.stderr
    assert "run with --pull" in result.stderr
    bad_memory = f"tasks:\n  a: {{spec: {{image: {IMAGE}, memory: lots, command: 'true'}}}}\n"
    result = run_docker(tmp_path, spec(tmp_path, bad_memory))
    assert result.returncode == 2
    assert "task 'a': spec key 'memory' must be bytes or a size like '512m'" in result.stderr
    assert len(store(tmp_path).ledger.history(None, 9)) == 1  # only the --default-image run's task


def test_pull_failure_names_the_image_and_task(tmp_path: Path, client: docker.DockerClient) -> None:
    missing = "tasks:\n  a: {spec: {image: '127.0.0.1:9/absent:1', command: 'true'}}\n"
    result = run_docker(tmp_path, spec(tmp_path, missing), "--pull")
    assert result.returncode == 2
    assert "cannot pull image '127.0.0.1:9/absent:1' (task 'a')" in result.stderr


def test_an_unreachable_daemon_is_one_line_with_the_fix(tmp_path: Path) -> None:
    result = alamode(
        "run",
        spec(tmp_path, PIPELINE),
        "--engine",
        "docker",
        cwd=tmp_path,
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot reach the Docker daemon at unix://{tmp_path}")
    assert "start it" in result.stderr and len(result.stderr.splitlines()) == 1
    assert store(tmp_path).ledger.history(None, 9) == []


def test_without_the_sdk_the_install_line_is_printed(tmp_path: Path) -> None:
    # Blocking the import is the only way to lack the SDK in an environment that has it:
    # a None in sys.modules makes `import docker` raise ImportError, as if not installed.
    blocked = (
        "import sys; sys.modules['docker'] = None; from a_la_mode.cli.main import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked, "run", spec(tmp_path, PIPELINE), "-e", "docker"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'a-la-mode[docker]'" in result.stderr


SLOW = f"""
tasks:
  slow: {{spec: {{image: {IMAGE}, command: 'sleep 60; touch "$ALAMODE_OUTPUT/x"'}}}}
"""


def wait_for_container(client: docker.DockerClient) -> None:
    deadline = time.monotonic() + 60
    while not our_containers(client, every=False):
        assert time.monotonic() < deadline, "the task's container never started"
        time.sleep(0.1)


def test_a_killed_runner_s_container_is_removed_by_the_next_run(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    runner = start(tmp_path, "run", spec(tmp_path, SLOW), "-e", "docker")
    wait_for_container(client)
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    assert len(our_containers(client)) == 1  # SIGKILL gives the runner no chance to clean up
    spec(tmp_path, SLOW.replace("sleep 60", "true"))
    result = run_docker(tmp_path, "p.yaml")
    assert result.returncode == 0, result.stderr
    assert our_containers(client) == []
    assert list(store(tmp_path).outputs.recorded_outputs().values()) == ["slow"]


def test_ctrl_c_stops_and_removes_the_containers(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    runner = start(tmp_path, "run", spec(tmp_path, SLOW), "-e", "docker")
    wait_for_container(client)
    runner.send_signal(signal.SIGINT)
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 130
    assert "nothing half-done was recorded" in stderr
    assert our_containers(client) == []
    assert store(tmp_path).outputs.recorded_outputs() == {}


def test_a_store_is_shared_by_the_local_and_docker_engines(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    mixed = PIPELINE.replace("id -u", "id -u 2>/dev/null")  # the same commands run in both
    assert alamode("run", spec(tmp_path, mixed), "--target", "a", cwd=tmp_path).returncode == 0
    result = run_docker(tmp_path, "p.yaml", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["event"], e["task"]) for e in events if e["event"] in ("skip", "start")] == [
        ("skip", "a"),
        ("start", "b"),
    ]
    engines = {run["engine"] for run in store(tmp_path).ledger.runs(9)}
    assert engines == {"local", "docker"}


def test_another_user_s_outputs_are_owned_by_that_user(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    # Only root can run a command as another user here, so the engine is asked to: the
    # container runs as the uid:gid it is given, and the files it writes are theirs.
    staging = tmp_path / "staging"
    staging.mkdir()
    os.chown(staging, 4242, 4343)
    engine = docker_engine.DockerEngine(user="4242:4343")
    job = Job(
        task="t",
        output_id="0" * 64,
        command='touch "$ALAMODE_OUTPUT/made"',
        env={},
        output_dir=str(staging),
        inputs={},
        log_path=str(tmp_path / "log"),
        spec={"image": IMAGE},
    )
    engine.check()
    assert engine.run(job).ok
    made = (staging / "made").stat()
    assert (made.st_uid, made.st_gid) == (4242, 4343)


def test_container_options_from_spec_keys() -> None:
    options = docker_engine.container_options("t", {"cpus": "0.5", "memory": "64M"})
    assert options == {
        "network_mode": "none",
        "nano_cpus": 500_000_000,
        "mem_limit": "64m",
        "memswap_limit": "64m",
    }
    with pytest.raises(EngineError, match="task 't': spec key 'cpus' must be a positive number"):
        docker_engine.container_options("t", {"cpus": "-1"})


def test_a_runner_label_is_alive_only_while_its_process_is() -> None:
    assert docker_engine.runner_alive(docker_engine.runner_label())
    child = subprocess.Popen(["sleep", "60"])
    label = docker_engine.runner_label().split(" ")
    label[1:] = [str(child.pid), str(start_ticks(child.pid))]
    assert docker_engine.runner_alive(" ".join(label))
    child.kill()
    child.wait()
    assert not docker_engine.runner_alive(" ".join(label))
    assert docker_engine.runner_alive("some-other-host 1 1")  # only that host can tell
    assert not docker_engine.runner_alive("not a label we wrote")


def test_the_end_to_end_example_in_the_docs_runs_as_written(client: docker.DockerClient) -> None:
    text = (ROOT / "docs" / "docker.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    result = shell(block, ROOT, timeout=300, argv=("bash", "-e", "-c"))
    assert result.returncode == 0, result.stderr
    promised = [line[2:].split("  ")[0] for line in block.splitlines() if line.startswith("# ")]
    summaries = [line.split(" in ")[0] for line in result.stderr.splitlines() if "tasks:" in line]
    assert summaries == promised
    started = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("start")]
    assert len(started) == 6 and started[4:] == ["user-orders", "user-details"]


def test_the_docker_engine_runs_on_a_blob_store_too(
    tmp_path: Path, client: docker.DockerClient
) -> None:
    url = f"file://{tmp_path}/bucket"
    env = {"ALAMODE_CACHE": str(tmp_path / "cache")}
    spec(tmp_path, PIPELINE)
    result = alamode("run", "p.yaml", "-e", "docker", "-s", url, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    elsewhere = {"ALAMODE_CACHE": str(tmp_path / "other-cache")}
    again = alamode("run", "p.yaml", "-e", "docker", "-s", url, cwd=tmp_path, env=elsewhere)
    assert "2 tasks: 2 already done" in again.stderr
    markers = sorted(p.name for p in (tmp_path / "bucket" / "success").iterdir())
    assert len(markers) == 2
    assert our_containers(client) == []


def test_a_task_s_listed_files_are_in_its_container_where_it_starts(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "a.sql").write_text("select 1;\n")
    (tmp_path / "step.sh").write_text("echo from the script\n")
    (tmp_path / "f.yaml").write_text(
        "tasks:\n  t:\n    spec:\n"
        f"      image: {IMAGE}\n"
        "      files: [step.sh, sql/]\n"
        '      command: \'pwd > "$ALAMODE_OUTPUT/pwd"; sh step.sh > "$ALAMODE_OUTPUT/out"; '
        'cat sql/a.sql >> "$ALAMODE_OUTPUT/out"; touch step.sh 2>/dev/null || echo ro '
        '>> "$ALAMODE_OUTPUT/out"\'\n'
    )
    result = run_docker(tmp_path, "f.yaml")
    assert result.returncode == 0, result.stderr
    output = store(tmp_path).ledger.history("t", 1)[0]["output"]
    folder = store(tmp_path).outputs.output_path(output)
    assert (folder / "pwd").read_text() == "/alamode/work\n"
    assert (folder / "out").read_text() == "from the script\nselect 1;\nro\n"  # read-only
