"""The ``alamode`` command, run for real in a child process."""

from __future__ import annotations

import json
from pathlib import Path

from a_la_mode import load_plan

from .conftest import FIXTURES, GOLDEN, SPECS, alamode


def assert_one_line_error(result: object, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert lines[-1].startswith("error: ")
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]
    for fragment in fragments:
        assert fragment in lines[-1]


def test_encode_writes_a_verified_plan(tmp_path: Path) -> None:
    result = alamode(
        "encode", str(SPECS / "collage.py"), "-o", "collage.plan.bencode", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "wrote collage.plan.bencode: 4 tasks" in result.stderr
    plan = load_plan(tmp_path / "collage.plan.bencode")
    assert {name: plan.output(name) for name in plan.tasks} == GOLDEN


def test_encode_defaults_to_the_spec_name_and_reports_json(tmp_path: Path) -> None:
    result = alamode("encode", str(SPECS / "diamond.yaml"), "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert report["path"] == "diamond.plan.bencode" and report["tasks"] == 4
    assert load_plan(tmp_path / "diamond.plan.bencode").digest == report["digest"]


def test_encode_to_stdout(tmp_path: Path) -> None:
    result = alamode("encode", str(SPECS / "collage.py"), "-o", "-", cwd=tmp_path)
    assert result.stdout.startswith("d6:formati1e")


def test_a_bad_spec_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "cycle.yaml"
    spec.write_text("tasks:\n  a: {deps: [b]}\n  b: {deps: [a]}\n")
    (tmp_path / "out.bencode").write_bytes(b"previous")
    result = alamode("encode", str(spec), "-o", "out.bencode", cwd=tmp_path)
    assert_one_line_error(result, "dependency cycle: a → b → a")
    assert (tmp_path / "out.bencode").read_bytes() == b"previous"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "f.yaml"
    spec.write_text("tasks:\n  a: {spec: {x: 1.5}}\n")
    result = alamode("--debug", "encode", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "tasks.a.spec.x is a float" in result.stderr


def test_global_options_may_follow_the_command(tmp_path: Path) -> None:
    spec = tmp_path / "f.yaml"
    spec.write_text("tasks:\n  a: {spec: {x: 1.5}}\n")
    result = alamode("encode", str(spec), "--debug", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr
    good = tmp_path / "g.yaml"
    good.write_text("tasks:\n  a: {spec: {command: 'touch \"$ALAMODE_OUTPUT/a\"'}}\n")
    loud = alamode("run", str(good), cwd=tmp_path)
    assert loud.returncode == 0 and "ok      a" in loud.stdout and "1 task:" in loud.stderr
    quiet = alamode("run", str(good), "-q", "--store", "other", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    # given before and after the command, store options add up: the second is checked too
    both = alamode("-O", "a=1", "status", str(good), "-O", "b", cwd=tmp_path)
    assert_one_line_error(both, "--store-option 'b': write it as KEY=VALUE")


def test_a_global_option_s_value_is_never_taken_for_the_command(tmp_path: Path) -> None:
    """'-O run status' gives 'run' to -O (and refuses it), before or after a command."""
    before = alamode("-O", "run", "status", "p.yaml", cwd=tmp_path)
    assert_one_line_error(before, "--store-option 'run': write it as KEY=VALUE")
    after = alamode("status", "p.yaml", "-O", "run", cwd=tmp_path)
    assert_one_line_error(after, "--store-option 'run': write it as KEY=VALUE")


def test_a_raising_python_spec_shows_only_the_users_frames(tmp_path: Path) -> None:
    spec = tmp_path / "boom.py"
    spec.write_text("import os\nos.environ['NOPE']\n")
    result = alamode("encode", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    assert 'boom.py", line 2, in <module>' in result.stderr
    assert "a_la_mode" not in result.stderr.replace(str(spec), "")
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_show_prints_a_table_and_json() -> None:
    table = alamode("show", str(SPECS / "collage.py"))
    assert table.returncode == 0, table.stderr
    for name in GOLDEN:
        assert name in table.stdout
    assert GOLDEN["collage"][:12] in table.stdout
    shown = json.loads(alamode("show", str(FIXTURES / "collage-0.1.2.bencode"), "--json").stdout)
    assert {n: t["output"] for n, t in shown["tasks"].items()} == GOLDEN
    assert shown["format"] == 1 and len(shown["digest"]) == 64


def test_validate_checks_specs_and_plans(tmp_path: Path) -> None:
    ok = alamode(
        "validate", str(SPECS / "diamond.toml"), str(FIXTURES / "collage-0.1.2.bencode"), "--json"
    )
    assert ok.returncode == 0, ok.stderr
    assert [r["ok"] for r in json.loads(ok.stdout)] == [True, True]
    tampered = tmp_path / "t.bencode"
    tampered.write_bytes(
        (FIXTURES / "collage-0.1.2.bencode")
        .read_bytes()
        .replace(b"python collage.py", b"python collage.sh")
    )
    assert_one_line_error(
        alamode("validate", str(tampered)), "task 'collage': field 'output' does not match"
    )


def test_validate_names_a_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(alamode("validate", str(tmp_path / "nope.bencode")), "no such file")


def test_graph_in_dot_and_mermaid() -> None:
    dot = alamode("graph", str(SPECS / "diamond.py"))
    assert dot.returncode == 0, dot.stderr
    assert dot.stdout.startswith("digraph plan {")
    assert '"fetch-users" -> "user-orders";' in dot.stdout
    mermaid = alamode("graph", str(SPECS / "diamond.py"), "--format", "mermaid")
    assert mermaid.stdout.startswith("flowchart LR")
    assert mermaid.stdout.count("-->") == 4


def test_schema_is_json_schema_for_spec_files() -> None:
    schema = json.loads(alamode("schema").stdout)
    assert schema["title"] == "a_la_mode pipeline spec file"
    assert "tasks" in schema["required"]


def test_help_lists_the_commands_and_usage_errors_exit_2() -> None:
    helped = alamode("--help")
    for command in ("encode", "show", "validate", "graph", "schema"):
        assert command in helped.stdout
    assert alamode("graph", str(SPECS / "diamond.py"), "--format", "png").returncode == 2
    assert alamode("--version").stdout.startswith("alamode ")


def test_usage_errors_are_one_line_naming_the_command_and_the_fix() -> None:
    mistyped = alamode("run", "p.plan", "--jbos", "3")
    assert_one_line_error(
        mistyped,
        "alamode run: unrecognized arguments: --jbos 3 (did you mean '--jobs'?)",
        "'alamode run --help' shows the usage",
    )
    assert len(mistyped.stderr.strip().splitlines()) == 1
    assert_one_line_error(alamode("history", "--limit", "0"), "--limit", "0 is less than 1")
    assert_one_line_error(alamode("run"), "alamode run", "required: PLAN")
    assert_one_line_error(alamode("shwo", "x"), "no command 'shwo', did you mean 'show'?")


def test_no_command_shows_the_commands_and_exits_2() -> None:
    bare = alamode()
    assert bare.returncode == 2
    for command in ("encode", "run", "status", "diff", "gc"):
        assert f"│ {command} " in bare.stdout  # a row of the commands' panel


def test_help_names_what_each_option_takes() -> None:
    """Metavars a reader understands (PLAN, STORE, N, TASK), not Python types."""

    def row(helped: str, option: str) -> list[str]:
        """The words of the help row of ``option`` (its names, what it takes, its help)."""
        (line,) = [line for line in helped.splitlines() if f" {option} " in line]
        return line.strip("│ ").split()

    helped = alamode("run", "--help").stdout
    assert "PLAN" in helped.splitlines()[1]  # the usage line
    assert "A plan file or a spec file" in helped  # what the argument is
    for option, takes in (("--store", "STORE"), ("--jobs", "N"), ("--target", "TASK")):
        assert takes in row(helped, option)[:3]
    assert "NAME" in row(helped, "--engine")[:3]
    assert "list[str]" not in helped
    assert "N" in row(alamode("history", "--help").stdout, "--limit")[:3]
    assert "FILE" in row(alamode("encode", "--help").stdout, "--output")[:3]


def test_starting_a_run_imports_nothing_it_does_not_use() -> None:
    """What 'alamode run' imports, every command pays for: tempfile is only for the commands
    that write plans. (difflib is not checked any more: typer's parser imports it to suggest
    option names.) Modules the interpreter's own start-up imported already are not counted."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import a_la_mode.cli.main, a_la_mode.cli.run, a_la_mode.run.runner\n"
        "import a_la_mode.engines.local\n"
        "unused = ('tempfile',)\n"
        "print(sorted(m for m in unused if m in sys.modules and m not in before))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_shell_completes_commands_and_options(tmp_path: Path) -> None:
    """What bash asks through the completion script ``alamode --show-completion bash``
    installs: the words that can follow."""
    # typer's own switch for tests: take the shell as given, not from the parent processes
    fixed_shell = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = alamode("--show-completion", "bash", cwd=tmp_path, env=fixed_shell)
    assert script.returncode == 0 and "_ALAMODE_COMPLETE=complete_bash" in script.stdout

    def complete(*words: str) -> list[str]:
        env = {"_ALAMODE_COMPLETE": "complete_bash", "COMP_CWORD": str(len(words))}
        done = alamode(env={**env, "COMP_WORDS": " ".join(["alamode", *words])}, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("ru") == ["run"]
    assert complete("run", "--jo") == ["--jobs"]
