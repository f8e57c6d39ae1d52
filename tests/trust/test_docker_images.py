"""Containers: the image that runs is part of the output ID; inputs sharing an output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ..conftest import alamode
from ..test_cli_run import spec
from ..test_docker_engine import IMAGE, client, daemon, run_docker  # noqa: F401 - fixtures

docker = pytest.importorskip("docker", reason="the docker extra: pip install 'a-la-mode[docker]'")
OTHER = "alamode-test:other"


@pytest.fixture
def other_image(client: docker.DockerClient) -> str:  # noqa: F811
    """A second tag of the test image, made a distinct image by one label."""
    subprocess.run(
        ["docker", "build", "-q", "-t", OTHER, "--label", "alamode-test=other", "-"],
        input=f"FROM {IMAGE}\n",
        text=True,
        check=True,
        capture_output=True,
    )
    return OTHER


def test_two_inputs_with_one_output_are_both_mounted(
    tmp_path: Path,
    client: docker.DockerClient,  # noqa: F811
) -> None:
    spec(
        tmp_path,
        f"""
tasks:
  a1: {{spec: {{image: {IMAGE}, command: 'echo same > "$ALAMODE_OUTPUT/f"'}}}}
  a2: {{spec: {{image: {IMAGE}, command: 'echo same > "$ALAMODE_OUTPUT/f"'}}}}
  both:
    deps: [a1, a2]
    spec:
      image: {IMAGE}
      command: 'cat "$ALAMODE_INPUT_A1/f" "$ALAMODE_INPUT_A2/f" > "$ALAMODE_OUTPUT/g"'
""",
    )
    result = run_docker(tmp_path, "p.yaml")
    assert result.returncode == 0, result.stderr
    status = json.loads(alamode("status", "p.yaml", "--json", cwd=tmp_path).stdout)
    both = next(row["output"] for row in status if row["task"] == "both")
    assert (tmp_path / ".alamode" / "outputs" / both / "g").read_text() == "same\nsame\n"


NO_IMAGE = "tasks:\n  a: {spec: {command: 'echo hi > \"$ALAMODE_OUTPUT/f\"'}}\n"


def test_another_default_image_is_another_output(
    tmp_path: Path,
    client: docker.DockerClient,  # noqa: F811
    other_image: str,
) -> None:
    spec(tmp_path, NO_IMAGE)
    first = run_docker(tmp_path, "p.yaml", "--default-image", IMAGE)
    assert first.returncode == 0 and "1 succeeded" in first.stderr
    again = run_docker(tmp_path, "p.yaml", "--default-image", IMAGE)
    assert "1 already done" in again.stderr
    swapped = run_docker(tmp_path, "p.yaml", "--default-image", other_image)
    assert swapped.returncode == 0 and "1 succeeded" in swapped.stderr, swapped.stderr


def test_a_plan_takes_its_default_image_when_compiled(
    tmp_path: Path,
    client: docker.DockerClient,  # noqa: F811
) -> None:
    spec(tmp_path, NO_IMAGE)
    encoded = alamode("encode", "p.yaml", "--default-image", IMAGE, cwd=tmp_path)
    assert encoded.returncode == 0, encoded.stderr
    shown = json.loads(alamode("show", "p.plan.bencode", "--json", cwd=tmp_path).stdout)
    assert shown["tasks"]["a"]["image"] == IMAGE
    late = run_docker(tmp_path, "p.plan.bencode", "--default-image", IMAGE)
    assert late.returncode == 2
    assert "give --default-image or --pin when compiling its spec" in late.stderr
    assert run_docker(tmp_path, "p.plan.bencode").returncode == 0


def test_pinning_writes_digests_and_diff_names_the_image(
    tmp_path: Path,
    client: docker.DockerClient,  # noqa: F811
    other_image: str,
) -> None:
    spec(tmp_path, f"tasks:\n  a: {{spec: {{image: {IMAGE}, command: 'echo hi'}}}}\n")
    assert alamode("encode", "p.yaml", "--pin", "-o", "old.plan", cwd=tmp_path).returncode == 0
    old = json.loads(alamode("show", "old.plan", "--json", cwd=tmp_path).stdout)
    image_id = client.images.get(IMAGE).id
    assert old["tasks"]["a"]["image"] == f"alamode-test@{image_id}"
    # the pinned plan runs, from the local image's ID
    assert run_docker(tmp_path, "old.plan").returncode == 0
    spec(tmp_path, f"tasks:\n  a: {{spec: {{image: {other_image}, command: 'echo hi'}}}}\n")
    assert alamode("encode", "p.yaml", "--pin", "-o", "new.plan", cwd=tmp_path).returncode == 0
    diff = alamode("diff", "old.plan", "new.plan", cwd=tmp_path).stdout
    other_id = client.images.get(other_image).id
    assert f"image alamode-test: {image_id[:19]}… → {other_id[:19]}…" in diff


def test_pinning_an_absent_image_is_one_line(
    tmp_path: Path,
    client: docker.DockerClient,  # noqa: F811
) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {image: 'alamode-test:absent', command: 'true'}}\n")
    result = alamode("encode", "p.yaml", "--pin", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: p.yaml: cannot pin image 'alamode-test:absent': it is not present locally; build, "
        "load or pull it first"
    )
    assert not (tmp_path / "p.plan.bencode").exists()
