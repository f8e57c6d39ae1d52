"""Bad input answers with one line and exit status 2, never a traceback."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import alamode
from ..test_cli_run import spec

NOT_TEXT = os.fsdecode(b"\xff")  # the byte 0xff, as Python hands it over from argv


@pytest.mark.parametrize(
    "args",
    [
        ["log", NOT_TEXT],
        ["history", NOT_TEXT],
        ["status", f"p{NOT_TEXT}.yaml"],
        ["run", "p.yaml", "--target", NOT_TEXT],
    ],
)
def test_arguments_that_are_not_text_get_one_line(tmp_path: Path, args: list[str]) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'true'}}\n")
    result = alamode(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    position = args.index(next(a for a in args if NOT_TEXT in a)) + 1
    shown = str(args[position - 1].encode("utf-8", "surrogateescape"))[2:-1]  # p\\xff.yaml
    assert result.stderr.splitlines() == [
        f"error: argument {position} ({shown}) is not UTF-8 text; give task names, paths and "
        "options as UTF-8"
    ]
    assert not (tmp_path / ".alamode").exists()


def test_plan_files_are_written_with_the_user_s_umask(tmp_path: Path) -> None:
    spec(tmp_path, "tasks:\n  a: {spec: {command: 'true'}}\n")
    old = os.umask(0o022)
    try:
        assert alamode("encode", "p.yaml", cwd=tmp_path).returncode == 0
        assert alamode("run", "p.yaml", cwd=tmp_path).returncode == 0
    finally:
        os.umask(old)
    plans = [tmp_path / "p.plan.bencode", *(tmp_path / ".alamode" / "plans").iterdir()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in plans} == {0o644}


def _laughs() -> str:
    """A YAML "billion laughs": ten levels of nine aliases each, 9**10 values expanded."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        before, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join([f'*{before}'] * 9)}]")
    return "\n".join([*lines, "tasks: {x: {spec: {command: 'true', v: *j}}}"]) + "\n"


def _long_laughs() -> str:
    """Few aliases, but of a long string: 250,000 copies of 100,000 characters."""
    text = "x" * 100_000
    return (
        "tasks:\n  x:\n    spec:\n      command: 'true'\n"
        f"      a: &a {text}\n      b: &b [{', '.join(['*a'] * 500)}]\n"
        f"      c: [{', '.join(['*b'] * 500)}]\n"
    )


HOSTILE = {
    "long-laughs.yaml": (_long_laughs(), "once its YAML aliases are expanded"),
    "laughs.yaml": (_laughs(), "expands to more than 1,000,000 values (or 100 MB of text)"),
    "deep.yaml": ("tasks: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 100"),
    "deep.json": ('{"tasks": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than 100"),
    "deep.toml": ("tasks = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 100"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_spec_files_get_one_line_in_bounded_memory(tmp_path: Path, name: str) -> None:
    text, said = HOSTILE[name]
    (tmp_path / name).write_text(text)

    def at_most_a_gigabyte() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    for command in ("validate", "run", "show"):
        result = subprocess.run(
            [sys.executable, "-c", "from a_la_mode.cli.main import main; main()", command, name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=at_most_a_gigabyte,
            check=False,
        )
        assert result.returncode == 2, result.stderr[-2000:]
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error: {name}: ") and said in line
    assert not (tmp_path / ".alamode").exists()


def test_a_spec_that_is_a_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").mkdir()
    result = alamode("validate", "p.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: p.yaml: is a folder, not a spec file; give the file inside it\n"
