"""Python function tasks: compiled to an import path and code digests, run in a fresh
process (local engine) or in-process (inprocess engine), refused when they cannot be
imported by path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from a_la_mode import Dag
from a_la_mode.errors import SpecError
from tests.conftest import alamode

TASKS = """
from pathlib import Path


def count_words(output: Path, inputs: dict[str, Path], top: int = 3) -> None:
    words = (inputs["text"] / "text.txt").read_text().split()
    counts = sorted({w: words.count(w) for w in words}.items(), key=lambda kv: (-kv[1], kv[0]))
    (output / "top.txt").write_text("".join(f"{w} {n}\\n" for w, n in counts[:top]))


def fails(output: Path, inputs: dict[str, Path]) -> None:
    raise ValueError("no good data today")
"""

PIPELINE = """
from a_la_mode import Dag
from tasks import count_words, fails

dag = Dag()
text = dag.task("text", {"command": "printf 'b a b c b a' > $ALAMODE_OUTPUT/text.txt"})
dag.function(count_words, name="count", deps=[text], args={"top": 2})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "tasks.py").write_text(TASKS)
    (folder / "pipeline.py").write_text(PIPELINE)
    return folder


def run(project: Path, *more: str) -> dict[str, list[str]]:
    """``alamode run pipeline.py --json`` from the project folder: tasks by event kind."""
    done = alamode("run", "pipeline.py", "--store", "store", "--json", *more, cwd=project)
    events: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        event = json.loads(line)
        events.setdefault(event["event"], []).append(event.get("task", ""))
    events["exit"] = [str(done.returncode)]
    return events


def test_the_spec_names_the_function_and_hashes_its_module(project: Path) -> None:
    shown = alamode("show", "pipeline.py", "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    spec = json.loads(shown.stdout)["tasks"]["count"]
    assert spec["function"] == "tasks:count_words"
    assert list(spec["code"]) == ["tasks"] and len(spec["code"]["tasks"]) == 64
    assert spec["args"] == {"top": 2}


@pytest.mark.parametrize("engine", ["local", "inprocess"])
def test_a_function_task_runs_and_writes_its_output(project: Path, engine: str) -> None:
    events = run(project, "--engine", engine)
    assert events["exit"] == ["0"], events
    assert sorted(events["succeed"]) == ["count", "text"]
    cat = alamode("cat", "pipeline.py", "count", "top.txt", "--store", "store", cwd=project)
    assert cat.stdout == "b 3\na 2\n"


def test_editing_the_module_reruns_the_task_and_diff_says_why(project: Path) -> None:
    assert alamode("encode", "pipeline.py", "-o", "old.bencode", cwd=project).returncode == 0
    assert run(project)["exit"] == ["0"]
    tasks = project / "tasks.py"
    tasks.write_text(tasks.read_text().replace("counts[:top]", "counts[: top + 1]"))
    assert alamode("encode", "pipeline.py", "-o", "new.bencode", cwd=project).returncode == 0
    diff = alamode("diff", "old.bencode", "new.bencode", cwd=project)
    assert "code of module tasks changed" in diff.stdout
    events = run(project)
    assert events["succeed"] == ["count"]  # the text task is untouched


def test_code_edited_after_compiling_fails_the_task_and_records_nothing(project: Path) -> None:
    assert alamode("encode", "pipeline.py", "-o", "plan.bencode", cwd=project).returncode == 0
    (project / "tasks.py").write_text(TASKS + "\n# edited\n")
    done = alamode("run", "plan.bencode", "--store", "store", "--json", cwd=project)
    assert done.returncode == 1
    log = alamode("log", "count", "--store", "store", cwd=project)
    assert "code of module tasks changed since the plan was compiled" in log.stdout
    status = alamode("status", "plan.bencode", "--store", "store", "--json", cwd=project)
    states = {row["task"]: row["label"] for row in json.loads(status.stdout)}
    assert states["count"] != "done"


@pytest.mark.parametrize("engine", ["local", "inprocess"])
def test_what_a_function_raises_is_its_failure_and_in_its_log(project: Path, engine: str) -> None:
    (project / "pipeline.py").write_text(PIPELINE + "dag.function(fails, deps=[text])\n")
    events = run(project, "--engine", engine, "--keep-going")
    assert events["fail"] == ["fails"] and events["exit"] == ["1"]
    log = alamode("log", "fails", "--store", "store", cwd=project)
    assert "ValueError: no good data today" in log.stdout


@pytest.mark.parametrize(
    ("definition", "said"),
    [
        ("dag.function(lambda output, inputs: None, name='anon')", "task 'anon': a lambda"),
        (
            "def outer():\n    def inner(output, inputs): pass\n    return inner\n"
            "dag.function(outer(), name='nested')",
            "task 'nested': outer.<locals>.inner is defined inside another function",
        ),
        (
            "def here(output, inputs): pass\ndag.function(here)",
            "task 'here': here is defined in the script being run",
        ),
        ("dag.function(count_words, name='bad', args={'top': 0.5})", "float"),
        ("dag.function(count_words, name='bad', args={'colour': 'red'})", "task 'bad':"),
    ],
)
def test_functions_that_cannot_be_imported_or_encoded_are_refused(
    project: Path, definition: str, said: str
) -> None:
    (project / "pipeline.py").write_text(PIPELINE + textwrap.dedent(definition) + "\n")
    done = alamode("encode", "pipeline.py", "-o", "plan.bencode", cwd=project)
    assert done.returncode == 2, done.stdout
    assert said in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (project / "plan.bencode").exists()


def test_the_decorator_form_in_an_importable_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flow.py").write_text(
        textwrap.dedent(
            """
            from a_la_mode import Dag

            dag = Dag()

            @dag.function()
            def hello(output, inputs):
                (output / "hi.txt").write_text("hi")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import flow  # type: ignore[import-not-found]

    assert callable(flow.hello)  # the decorator hands the function back
    assert flow.dag.compile().spec("hello")["function"] == "flow:hello"


def test_a_function_task_in_python_must_be_named_by_a_def() -> None:
    with pytest.raises(SpecError, match="task 'x': a lambda"):
        Dag().function(lambda output, inputs: None, name="x")
