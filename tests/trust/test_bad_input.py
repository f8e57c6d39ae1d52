"""Bad input answers with one line and exit status 2, never a traceback."""

from __future__ import annotations

import os
import stat
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
