"""_native.c against the Python steps it stands in for: the same outputs, manifests, journal
lines, permissions, logs and results, on real files and real processes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import sysconfig
import threading
import time
from pathlib import Path

import pytest

from a_la_mode import compile_plan, native
from a_la_mode.dsl import TaskDef
from a_la_mode.engine import Job, Result
from a_la_mode.localstore import LocalStore, Manifest
from engines.local import LocalEngine

OUTPUT = "ab" * 32
compiled_only = pytest.mark.skipif(
    native.compiled is None, reason="_native.c: not built here, or ALAMODE_NATIVE=0"
)


def test_it_is_built_wherever_it_can_be() -> None:
    """The extensions are optional at install: a machine with a C compiler and OpenSSL's
    headers (this one, CI) must have them, or only the Python steps would be tested here."""
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    can = shutil.which("cc") or shutil.which("gcc")
    if can and include.exists() and Path("/usr/include/openssl/evp.h").exists():
        assert native.compiled is not None
        assert native.plan_reader is not None


def make_tree(staging: Path, names: list[str]) -> None:
    (staging / "sub" / "deeper").mkdir(parents=True)
    for index, name in enumerate(names):
        (staging / name).write_bytes(name.encode() * index * 10_000)
    (staging / "sub" / "f").write_text("data")
    (staging / "sub" / "deeper" / "empty").touch()
    (staging / "link").symlink_to("sub/f")  # left out of the manifest, left as it is
    os.mkfifo(staging / "sub" / "pipe")


def publish(tmp_path: Path, way: str, names: list[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store whose run published one output of ``names`` (and a fixed tree) ``way``."""
    if way == "python":
        monkeypatch.setattr(native, "compiled", None)
    store = LocalStore(tmp_path / way)
    store.begin_run(compile_plan({}, [TaskDef("t", {})]), "local")
    staging = store.new_staging(OUTPUT)
    make_tree(staging, names)
    manifest = store.publish(OUTPUT, staging)
    assert Manifest.of_directory(store.output_path(OUTPUT)) == manifest
    monkeypatch.undo()
    return tmp_path / way


def modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode)
        for path in sorted(root.rglob("*"))
    }


def journal_lines(store_root: Path) -> list[str]:
    (journal,) = (store_root / "staging").glob("journal.*")
    return journal.read_text().splitlines()


@compiled_only
@pytest.mark.parametrize(
    "names",
    [["a", "b.txt", "c-d_e"], ["é-accent", 'quote"d', "back\\slash", "tab\tname"]],
    ids=["plain names", "names JSON escapes"],
)
def test_both_ways_publish_the_same_output(
    tmp_path: Path, names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = publish(tmp_path, "compiled", names, monkeypatch)
    python = publish(tmp_path, "python", names, monkeypatch)
    output = Path("outputs") / OUTPUT
    assert modes(compiled / output) == modes(python / output)
    written = [name for name, mode in modes(compiled / output).items() if mode & 0o222]
    assert written == ["link"]  # a symbolic link's own mode means nothing
    assert stat.S_IMODE((compiled / output).stat().st_mode) & 0o222 == 0
    assert (compiled / output / "link").is_symlink()
    assert journal_lines(compiled) == journal_lines(python)  # byte for byte
    line = json.loads(journal_lines(compiled)[0])
    assert line["output"] == OUTPUT and set(line["files"]) == {*names, "sub/f", "sub/deeper/empty"}


@compiled_only
def test_an_orphan_in_the_way_is_replaced(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.begin_run(compile_plan({}, [TaskDef("t", {})]), "local")
    orphan = store.output_path(OUTPUT)
    orphan.mkdir()
    (orphan / "stale").write_text("from a runner killed before recording it")
    orphan.chmod(0o555)
    staging = store.new_staging(OUTPUT)
    (staging / "fresh").write_text("ours")
    manifest = store.publish(OUTPUT, staging)
    assert sorted(p.name for p in orphan.iterdir()) == ["fresh"]
    assert set(manifest.files) == {"fresh"}
    assert len(journal_lines(tmp_path / "s")) == 1


def job(tmp_path: Path, command: str | list[str], timeout: int | None = None) -> Job:
    output = tmp_path / "out"
    output.mkdir(exist_ok=True)
    return Job(
        task="t",
        output_id=OUTPUT,
        command=command,
        env={"GREETING": "hello"},
        output_dir=str(output),
        inputs={},
        log_path=str(tmp_path / "logs" / OUTPUT / "1.log"),
        timeout=timeout,
    )


@pytest.mark.usefixtures("both_paths")
def test_output_goes_to_the_log_made_only_when_written(tmp_path: Path) -> None:
    engine = LocalEngine()
    quiet = engine.run(job(tmp_path, 'touch "$ALAMODE_OUTPUT/done"'))
    assert quiet.ok and not (tmp_path / "logs").exists()
    said = engine.run(job(tmp_path, 'echo "$GREETING"; echo oops >&2; exit 3'))
    assert (said.exit_code, said.ok) == (3, False)
    assert Path(tmp_path / "logs" / OUTPUT / "1.log").read_text() == "hello\noops\n"


@pytest.mark.usefixtures("both_paths")
def test_a_program_that_cannot_start_says_so_in_its_log(tmp_path: Path) -> None:
    result = LocalEngine().run(job(tmp_path, ["no-such-program-anywhere", "x"]))
    assert result.exit_code is None and "cannot start no-such-program-anywhere" in result.detail
    log = Path(tmp_path / "logs" / OUTPUT / "1.log").read_text()
    assert log == "alamode: cannot start no-such-program-anywhere: No such file or directory\n"


@pytest.mark.usefixtures("both_paths")
def test_a_timeout_ends_the_group_and_says_so(tmp_path: Path) -> None:
    started = time.monotonic()
    result = LocalEngine().run(job(tmp_path, "echo begun; sleep 30 & sleep 30", timeout=1))
    assert result.timed_out and not result.ok and time.monotonic() - started < 10
    log = Path(tmp_path / "logs" / OUTPUT / "1.log").read_text()
    assert log == "begun\n\nalamode: timed out after 1 s; stopping it\n"


@pytest.mark.usefixtures("both_paths")
def test_stop_all_ends_a_running_command_and_any_started_after(tmp_path: Path) -> None:
    """What Ctrl-C does: a command that ignores SIGTERM is killed after the grace time."""
    engine = LocalEngine()
    results: list[Result] = []
    worker = threading.Thread(
        target=lambda: results.append(engine.run(job(tmp_path, "trap '' TERM; sleep 60")))
    )
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    engine.stop_all()
    worker.join(timeout=30)
    assert not worker.is_alive() and 2 < time.monotonic() - started < 20
    assert results[0].signal == 9 and not results[0].ok
    later = engine.run(job(tmp_path, "sleep 60"))
    assert later.signal == 15  # stopped at once: the run is stopping


def test_engines_says_whether_the_steps_are_compiled() -> None:
    import subprocess
    import sys

    def local_state(native_setting: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from a_la_mode.cli import main; main()", "engines", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "ALAMODE_NATIVE": native_setting},
            check=True,
        )
        return next(row["state"] for row in json.loads(done.stdout) if row["name"] == "local")

    assert local_state("0") == "ok (Python steps; compiled ones off (ALAMODE_NATIVE=0))"
    built = importlib.util.find_spec("a_la_mode._native") is not None  # whatever this
    expected = "ok (compiled steps)" if built else native.NOT_BUILT  # process's setting
    assert expected in local_state("1")
