"""The SSH engine, for real: two OpenSSH servers on loopback ports, generated host and user
keys, inputs and outputs over SFTP, the store on this machine."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from a_la_mode.testing import EngineContract
from tests.conftest import ROOT, SPECS, alamode, events_of
from tests.sshd import Sshd
from tests.test_cli_run import start

pytest.importorskip("asyncssh", reason="pip install -e '.[test]'")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Sshd]]:
    servers = [Sshd(tmp_path_factory.mktemp(f"sshd{n}")) for n in (1, 2)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


def client_home(tmp_path: Path, hosts: list[Sshd]) -> dict[str, str]:
    """A HOME whose ~/.ssh trusts both servers and holds a key each lets in."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    (ssh / "known_hosts").write_text(
        "".join((h.home / ".ssh" / "known_hosts").read_text() for h in hosts)
    )
    for server in hosts[1:]:  # one client key, let in by both
        keys = server.folder / "keys" / "authorized_keys"
        keys.write_text((hosts[0].home / ".ssh" / "id_ed25519.pub").read_text())
    for name in ("id_ed25519", "id_ed25519.pub"):
        (ssh / name).write_bytes((hosts[0].home / ".ssh" / name).read_bytes())
        os.chmod(ssh / name, 0o600)
    return {"HOME": str(tmp_path / "home"), "SSH_AUTH_SOCK": ""}


PIPELINE = """
tasks:
  words: {spec: {command: 'printf "b a b\\\\n" > "$ALAMODE_OUTPUT/words"; echo made words'}}
  sorted:
    deps: [words]
    spec:
      command: ["sh", "sort.sh"]
      files: [sort.sh]
  where:
    deps: [words]
    spec: {command: 'echo "$SSH_CONNECTION" > "$ALAMODE_OUTPUT/where"', env: {LANG: C}}
"""


def test_a_plan_runs_over_ssh_with_inputs_files_and_logs(hosts: list[Sshd], tmp_path: Path) -> None:
    env = client_home(tmp_path, hosts)
    (tmp_path / "flow.yaml").write_text(PIPELINE)
    (tmp_path / "sort.sh").write_text(
        'tr " " "\\n" < "$ALAMODE_INPUT_WORDS/words" | sort > "$ALAMODE_OUTPUT/s"\n'
    )
    host_args = [arg for server in hosts for arg in ("--host", server.host)]
    done = alamode("run", "flow.yaml", "--engine", "ssh", *host_args, "-j", "1", "--json",
                   cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert alamode("cat", "flow.yaml", "sorted", "s", cwd=tmp_path).stdout.split() == [
        "a", "b", "b",
    ]  # fmt: skip
    assert alamode("log", "words", cwd=tmp_path).stdout == "made words\n"
    where = alamode("cat", "flow.yaml", "where", "where", cwd=tmp_path).stdout.split()
    assert where[2:] in [["127.0.0.1", str(server.port)] for server in hosts]
    again = alamode("run", "flow.yaml", "--engine", "ssh", *host_args, "--json",
                    cwd=tmp_path, env=env)  # fmt: skip
    assert [e["event"] for e in events_of(again.stdout)].count("start") == 0


def test_tasks_are_spread_over_the_hosts(hosts: list[Sshd], tmp_path: Path) -> None:
    env = client_home(tmp_path, hosts)
    tasks = "".join(
        f'  t{n}: {{spec: {{command: \'sleep 0.3; echo "$SSH_CONNECTION {n}" > '
        '"$ALAMODE_OUTPUT/where"\'}}\n'
        for n in range(6)
    )
    (tmp_path / "many.yaml").write_text("tasks:\n" + tasks)
    host_args = [arg for server in hosts for arg in ("--host", server.host)]
    done = alamode("run", "many.yaml", "--engine", "ssh", *host_args, "-j", "1",
                   cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ports = {
        alamode("cat", "many.yaml", f"t{n}", "where", cwd=tmp_path).stdout.split()[3]
        for n in range(6)
    }
    assert ports == {str(server.port) for server in hosts}


def test_an_unknown_host_key_is_refused_in_one_line(hosts: list[Sshd], tmp_path: Path) -> None:
    env = client_home(tmp_path, hosts)
    (Path(env["HOME"]) / ".ssh" / "known_hosts").write_text("")
    (tmp_path / "flow.yaml").write_text(PIPELINE)
    (tmp_path / "sort.sh").write_text("true\n")
    done = alamode("run", "flow.yaml", "--engine", "ssh", "--host", hosts[0].host,
                   cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 2
    assert "host key is not trusted" in done.stderr and "ssh-keyscan" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_connection_dropped_mid_task_fails_the_attempt_and_the_rerun_resumes(
    hosts: list[Sshd], tmp_path: Path
) -> None:
    env = client_home(tmp_path, hosts)
    started = tmp_path / "started"
    (tmp_path / "flow.yaml").write_text(
        "tasks:\n"
        "  first: {spec: {command: 'echo 1 > \"$ALAMODE_OUTPUT/one\"'}}\n"
        f"  slow: {{deps: [first], spec: {{command: 'touch {started}; sleep 2; "
        'cp "$ALAMODE_INPUT_FIRST/one" "$ALAMODE_OUTPUT/"\'}}\n'
    )
    args = ["run", "flow.yaml", "--engine", "ssh", "--host", hosts[0].host, "--json"]
    before = set(Path("/tmp").glob("alamode-job-*"))
    runner = start(tmp_path, *args, env=env)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()
        time.sleep(0.05)
    for pid in hosts[0].connections():  # the server's side of our connection goes
        os.kill(pid, signal.SIGKILL)
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 1
    failed = [e for e in events_of(out) if e["event"] == "fail"]
    assert [e["task"] for e in failed] == ["slow"]
    assert "lost the connection to" in failed[0]["detail"]
    rerun = alamode(*args, cwd=tmp_path, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert [e["task"] for e in events_of(rerun.stdout) if e["event"] == "start"] == ["slow"]
    for left in set(Path("/tmp").glob("alamode-job-*")) - before:  # the dropped job's folder
        shutil.rmtree(left, ignore_errors=True)


def test_job_folders_left_a_day_ago_are_removed_on_connecting(
    hosts: list[Sshd], tmp_path: Path
) -> None:
    env = client_home(tmp_path, hosts)
    old, fresh = (Path(f"/tmp/alamode-job-test{os.getpid()}-{age}") for age in ("old", "new"))
    for folder in (old, fresh):
        (folder / "out").mkdir(parents=True)
        (folder / "out" / "f").write_text("left behind\n")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    (tmp_path / "flow.yaml").write_text("tasks:\n  a: {spec: {command: 'true'}}\n")
    try:
        done = alamode("run", "flow.yaml", "--engine", "ssh", "--host", hosts[0].host,
                       cwd=tmp_path, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert not old.exists() and fresh.exists()  # a job of a live run may be using it
    finally:
        for folder in (old, fresh):
            shutil.rmtree(folder, ignore_errors=True)


def test_bad_host_arguments_are_refused(hosts: list[Sshd], tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("tasks:\n  a: {spec: {command: 'true'}}\n")
    done = alamode("run", "flow.yaml", "--engine", "ssh", "--host", "me@:x", cwd=tmp_path)
    assert done.returncode == 2 and "is not user@host[:port]" in done.stderr
    done = alamode("run", "flow.yaml", "--engine", "ssh", cwd=tmp_path)
    assert done.returncode == 2 and "needs a host" in done.stderr


def test_the_docs_example_runs_over_ssh(hosts: list[Sshd], tmp_path: Path) -> None:
    """docs/cluster.md's SSH example: the diamond pipeline on two hosts."""
    env = client_home(tmp_path, hosts)
    host_args = [arg for server in hosts for arg in ("--host", server.host)]
    spec = str(SPECS / "diamond.py")
    done = alamode("run", spec, "--engine", "ssh", *host_args, "-j", "2", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    local = alamode("run", spec, "--store", "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    for task in ("user-profiles", "user-orders"):
        over_ssh = alamode("cat", spec, task, cwd=tmp_path).stdout
        here = alamode("cat", spec, task, "--store", "local", cwd=tmp_path).stdout
        assert over_ssh == here and len(over_ssh.splitlines()) == 100


class TestSshEngineContract(EngineContract):
    """The engine kit, on a real sshd: what every engine must do with a Job."""

    @pytest.fixture(autouse=True)
    def _client(self, hosts: list[Sshd], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in client_home(tmp_path, hosts).items():
            monkeypatch.setenv(name, value)  # asyncssh reads ~/.ssh from HOME
        self.host = hosts[0].host

    def make_engine(self) -> Any:
        from a_la_mode.engines.ssh_engine import SshEngine

        return SshEngine([self.host])


def test_function_tasks_are_refused_before_anything_runs(hosts: list[Sshd], tmp_path: Path) -> None:
    env = {**client_home(tmp_path, hosts), "PYTHONPATH": str(ROOT)}
    (tmp_path / "flow.py").write_text(
        "from a_la_mode import Dag\n"
        "from tests.fixtures.dask_tasks import count_words\n"
        "dag = Dag()\n"
        "text = dag.task('text', {'command': 'echo x > $ALAMODE_OUTPUT/t'})\n"
        "dag.function(count_words, name='count', deps=[text])\n"
    )
    done = alamode("run", "flow.py", "--engine", "ssh", "--host", hosts[0].host,
                   cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "task 'count' is a Python function task, and the ssh engine runs commands" in (
        done.stderr
    )
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no attempts" in alamode("history", cwd=tmp_path).stderr  # nothing ran
