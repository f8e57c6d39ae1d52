"""The docker engine: each task's command in its own container, through the Docker SDK.

Safe by default: no network unless the spec's ``network`` key asks, never privileged, all
capabilities dropped, no new privileges, and the only mounts are the task's inputs
(read-only) and its staging output directory. The command runs as the invoking user's
uid:gid, so outputs are not owned by root. Containers carry labels naming the runner that
started them; ``prepare`` removes those whose runner is gone (killed with SIGKILL, say).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import Mount

from a_la_mode.compile.images import is_pinned, split_pinned
from a_la_mode.run.engine import EngineError, Job, LogFile, Result, task_environment
from a_la_mode.run.processes import start_ticks
from a_la_mode.run.pyfunction import refuse_function_tasks

LABEL = "a_la_mode.runner"  # "<host> <pid> <process start time>" of the runner
OUTPUT_MOUNT = "/alamode/output"
INPUTS_MOUNT = "/alamode/inputs"
WORK_MOUNT = "/alamode/work"  # a task's listed files (compile/files.py), read-only
STOP_GRACE_SECONDS = 3  # between SIGTERM and SIGKILL on Ctrl-C
MEMORY = re.compile(r"^[1-9][0-9]*[bkmg]?$")
START_HINT = "start it (e.g. 'sudo systemctl start docker', or 'dockerd &' as root)"


class DockerEngine:
    """Run commands in containers of the image named by each task's ``image`` key."""

    name = "docker"

    def __init__(self, pull: bool = False, user: str | None = None) -> None:
        self.pull = pull
        self.user = user or f"{os.getuid()}:{os.getgid()}"
        self.runner = runner_label()
        self._client: docker.DockerClient | None = None
        self._running: dict[str, Container] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._runnable: dict[str, str] = {}  # image in a spec -> what containers start from

    # -- before the run ------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self.check()
        assert self._client is not None
        return self._client

    def check(self) -> None:
        """The daemon answers; else one line saying how to start it."""
        client: docker.DockerClient | None = None
        failure = None
        with warnings.catch_warnings():
            # The SDK never closes the socket of a connection that failed; it is dropped here.
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                client = docker.from_env()
                client.ping()
            except docker.errors.DockerException as err:
                failure = _first_line(err)
                if client is not None:
                    client.close()  # its connection pool holds a socket
            if failure is not None:
                gc.collect()  # the failed connection's socket, while the warning is ignored
        if failure is not None:
            where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            raise EngineError(
                f"cannot reach the Docker daemon at {where} ({failure}); {START_HINT}"
            )
        self._client = client

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """Refuse tasks this engine cannot run, make sure every image is here, and remove
        containers left behind by runners that are gone."""
        images: dict[str, str] = {}  # image -> the first task that wants it
        refuse_function_tasks(self.name, tasks, "runs commands in images")
        for task, spec in tasks.items():
            container_options(task, spec)  # raises on a bad key
            images.setdefault(image_of(task, spec), task)
        self._runnable = {
            image: self._ensure_image(image, task) for image, task in sorted(images.items())
        }
        self.remove_stale()

    def pin(self, image: str) -> str:
        """``image`` as ``NAME@sha256:HEX``: its registry digest where it has one, else the
        local image's ID (an image built or imported here has no registry digest)."""
        if is_pinned(image):
            return image
        try:
            found = self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise EngineError(
                f"cannot pin image {image!r}: it is not present locally; build, load or pull "
                "it first"
            ) from None
        except docker.errors.APIError as err:
            raise EngineError(f"cannot look up image {image!r}: {_first_line(err)}") from None
        name = _repository(image)
        for digest in found.attrs.get("RepoDigests") or []:
            if digest.split("@", 1)[0] == name:
                return str(digest)
        return f"{name}@{found.id}"

    def _ensure_image(self, image: str, task: str) -> str:
        """Make sure ``image`` is here (pulling it with --pull); returns the reference to
        create containers from (a pinned local image by its ID)."""
        pinned = split_pinned(image)
        try:
            try:
                self.client.images.get(image)
                return image
            except docker.errors.ImageNotFound:
                if pinned is None:
                    raise
                found = self.client.images.get(pinned[1])  # a local image, by its ID
                return str(found.id)
        except docker.errors.ImageNotFound:
            if not self.pull:
                raise EngineError(
                    f"image {image!r} (task {task!r}) is not present locally; build or load it, "
                    "or run with --pull to pull it first"
                ) from None
        except docker.errors.APIError as err:
            raise EngineError(f"cannot look up image {image!r}: {_first_line(err)}") from None
        try:
            self.client.images.pull(image)
        except docker.errors.DockerException as err:
            raise EngineError(
                f"cannot pull image {image!r} (task {task!r}): {_first_line(err)}"
            ) from None
        return image

    def remove_stale(self) -> list[str]:
        """Remove this host's labelled containers whose runner is no longer alive."""
        removed = []
        for container in self.client.containers.list(all=True, filters={"label": LABEL}):
            if runner_alive(container.labels.get(LABEL, "")):
                continue
            try:
                container.remove(force=True)
                removed.append(str(container.id))
            except docker.errors.NotFound:
                pass  # another runner removed it first
        return removed

    # -- one task ------------------------------------------------------------------------

    def run(self, job: Job) -> Result:
        started = time.monotonic()
        container = None
        try:
            container = self._create(job)
            return self._run_container(container, job, started)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
            return _broken(job, started, err)
        finally:
            if container is not None:
                with self._lock:
                    self._running.pop(str(container.id), None)
                _quietly(lambda: container.remove(force=True))

    def _create(self, job: Job) -> Container:
        spec = job.spec
        inputs = {name: f"{INPUTS_MOUNT}/{name}" for name in job.inputs}
        # A list, not a dict keyed by host path: two inputs may be the same output.
        mounts = [Mount(OUTPUT_MOUNT, os.path.realpath(job.output_dir), type="bind")]
        for name, path in job.inputs.items():
            mounts.append(Mount(inputs[name], os.path.realpath(path), type="bind", read_only=True))
        if job.workdir is not None:  # its listed files, at their paths, where it starts
            work = os.path.realpath(job.workdir)
            mounts.append(Mount(WORK_MOUNT, work, type="bind", read_only=True))
        command = job.command
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        environment = {
            **job.env,
            **task_environment(job.task, job.output_id, OUTPUT_MOUNT, inputs),
        }
        image = image_of(job.task, spec)
        container: Container = self.client.containers.create(
            self._runnable.get(image, image),
            entrypoint=argv[:1],
            command=argv[1:],
            environment=environment,
            mounts=mounts,
            user=self.user,
            labels={
                **extra_labels(),
                LABEL: self.runner,
                "a_la_mode.task": job.task,
                "a_la_mode.output": job.output_id,
            },
            privileged=False,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            stdin_open=False,
            tty=False,
            working_dir=WORK_MOUNT if job.workdir is not None else None,
            **container_options(job.task, spec),
        )
        return container

    def _run_container(self, container: Container, job: Job, started: float) -> Result:
        with self._lock:
            if self._stopping:
                return Result(None, time.monotonic() - started, detail="stopped before it started")
            self._running[str(container.id)] = container
        container.start()  # slow (about 0.2 s): not under the lock, so tasks start in parallel
        if self._stopping:  # stop_all() may have come between: it cannot stop what had not begun
            _quietly(container.kill)
        timed_out = False
        try:
            status = container.wait(timeout=job.timeout)
        except requests.exceptions.ConnectionError:
            # the SDK reports its read timeout as a connection error: tell them apart
            if job.timeout is None or time.monotonic() - started < job.timeout:
                raise
            timed_out = True
            _quietly(container.kill)
            status = container.wait()
        seconds = time.monotonic() - started
        with LogFile(job.log_path) as log:
            for chunk in container.logs(stdout=True, stderr=True, stream=True):
                log.write(chunk)
            if timed_out:
                log.write(f"\nalamode: timed out after {job.timeout} s; killed it\n".encode())
        code = status.get("StatusCode")
        oom_killed = _oom_killed(container, code, timed_out)
        return log.failure(Result(code, seconds, timed_out=timed_out, oom_killed=oom_killed))

    def stop_all(self) -> None:
        """Ctrl-C: stop every container this engine started (SIGTERM, then SIGKILL)."""
        with self._lock:
            self._stopping = True
            running = list(self._running.values())
        for container in running:
            _quietly(functools.partial(container.stop, timeout=STOP_GRACE_SECONDS))


def image_of(task: str, spec: Mapping[str, Any]) -> str:
    """The task's ``image``; EngineError where it has none (the image is part of a task's
    output ID, so it is never chosen at run time)."""
    image = spec.get("image")
    if image is None:
        raise EngineError(
            f"task {task!r} has no 'image' key; give it one, or compile with "
            "--default-image IMAGE (alamode encode or alamode run SPEC)"
        )
    if not isinstance(image, str) or not image.strip():
        raise EngineError(
            f"task {task!r}: spec key 'image' must be an image name, e.g. 'debian:12'"
        )
    return image


def _repository(image: str) -> str:
    """``registry:5000/team/x:tag`` -> ``registry:5000/team/x``: the reference less its tag."""
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def container_options(task: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Docker options from the spec's ``network``, ``cpus`` and ``memory`` keys."""
    where = f"task {task!r}: spec key"
    network = spec.get("network", "none")
    if not isinstance(network, str) or not network:
        raise EngineError(f"{where} 'network' must be a network name, e.g. 'bridge'")
    options: dict[str, Any] = {"network_mode": network}
    if "cpus" in spec:
        try:
            cpus = float(spec["cpus"])
        except (TypeError, ValueError):
            cpus = 0.0
        if not cpus > 0:
            raise EngineError(f"{where} 'cpus' must be a positive number, e.g. 2 or '0.5'")
        options["nano_cpus"] = int(cpus * 1e9)
    if "memory" in spec:
        memory = str(spec["memory"]).lower()
        if isinstance(spec["memory"], list | dict) or not MEMORY.match(memory):
            raise EngineError(f"{where} 'memory' must be bytes or a size like '512m' or '2g'")
        options["mem_limit"] = memory
        options["memswap_limit"] = memory  # no swap: past the limit the task is killed
    return options


def extra_labels() -> dict[str, str]:
    """Labels for every container, from ``ALAMODE_DOCKER_LABELS`` (``key=value,key=value``):
    to find a team's or a test session's containers among others on one daemon."""
    labels = {}
    for item in filter(None, os.environ.get("ALAMODE_DOCKER_LABELS", "").split(",")):
        key, _, value = item.partition("=")
        if key.strip():
            labels[key.strip()] = value.strip()
    return labels


def runner_label() -> str:
    """This process, as a container label: host, pid, and start time (pids are reused)."""
    return f"{socket.gethostname()} {os.getpid()} {start_ticks(os.getpid())}"


def runner_alive(label: str) -> bool:
    """Whether the runner named by a container's label still runs. Another host's runner
    is taken to be alive: only it can tell."""
    try:
        host, pid, start = label.split(" ")
        pid_number = int(pid)
    except ValueError:
        return False  # not a label we wrote
    if host != socket.gethostname():
        return True
    return str(start_ticks(pid_number)) == start


def _broken(job: Job, started: float, err: Exception) -> Result:
    """The daemon refused or went away: the task did not run to an end we can trust."""
    why = f"docker: {_first_line(err)}"
    with LogFile(job.log_path) as log:
        log.write(f"alamode: {why}\n".encode())
    return Result(None, time.monotonic() - started, detail=why)


def _quietly(action: Callable[[], object]) -> None:
    """Do ``action``; a container that has ended or gone already is not an error here."""
    with contextlib.suppress(docker.errors.DockerException):
        action()


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


OOM_EVENT_SECONDS = 2.0  # how long a SIGKILL under a memory limit waits for dockerd's verdict


def _oom_killed(container: Container, code: int | None, timed_out: bool) -> bool:
    """Docker's ``OOMKilled``. The kernel's OOM event can reach dockerd just after the exit
    was reported (seen on a loaded machine: status 137, the flag still false), so a container
    killed by SIGKILL under a memory limit is asked again for a moment."""
    deadline = time.monotonic() + OOM_EVENT_SECONDS
    while True:
        container.reload()
        if container.attrs["State"].get("OOMKilled"):
            return True
        limited = container.attrs.get("HostConfig", {}).get("Memory")
        if code != 137 or timed_out or not limited or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
