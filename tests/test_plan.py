"""Reading plans is strict: anything corrupt, non-canonical, tampered or foreign is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from a_la_mode import Dag, Plan, PlanError, load_plan, save_plan
from a_la_mode.compile.canonical import encode

from .conftest import FIXTURES, GOLDEN, collage_dag, edited

COLLAGE_BYTES = collage_dag().bencode()
# Every plan here is read by _planread.c and by the Python reader it stands in for.


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


def test_a_plan_written_by_a_la_mode_0_1_2_loads_as_format_1() -> None:
    path = FIXTURES / "collage-0.1.2.bencode"
    plan = load_plan(path)
    assert plan.format == 1
    assert {name: plan.output(name) for name in plan.tasks} == GOLDEN
    # Its toposort level was written unsorted; it is accepted and kept as written.
    assert plan.toposort[1] == ["edge_enhance", "blur"]
    assert plan.to_bytes() == path.read_bytes()
    assert plan.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_then_load_gives_the_same_bytes(tmp_path: Path) -> None:
    plan = collage_dag().compile()
    save_plan(plan, tmp_path / "p.bencode")
    again = load_plan(tmp_path / "p.bencode")
    assert again == plan
    assert again.to_bytes() == plan.to_bytes() == (tmp_path / "p.bencode").read_bytes()
    assert again.digest == plan.digest


def test_saving_over_an_existing_file_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "p.bencode"
    target.write_bytes(b"old")
    collage_dag().save(target)
    assert target.read_bytes() == COLLAGE_BYTES
    assert [p.name for p in tmp_path.iterdir()] == ["p.bencode"]


def test_accessors_separate_spec_inputs_and_output() -> None:
    plan = collage_dag().compile()
    assert plan.spec("blur") == {
        "image": "collage",
        "sha": "6f09d",
        "command": "python transform_images.py blur",
    }
    assert plan.inputs("blur") == {"download_images": GOLDEN["download_images"]}
    assert plan.output("blur") == GOLDEN["blur"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty, not a plan"),
        (b"\x89PNG\r\n", "is not a plan"),
        (b"li1ee", "is not a plan"),
        (COLLAGE_BYTES[:-40], "corrupt or truncated (it ends before its last value does)"),
        (
            replace_once(COLLAGE_BYTES, b"python collage.py", b"python collage.sh"),
            "task 'collage': field 'output' does not match its spec and inputs",
        ),
        (
            replace_once(COLLAGE_BYTES, b"6:formati1e", b"6:formati2e"),
            "plan format 2, newer than this alamode reads (1); upgrade a-la-mode",
        ),
        (replace_once(COLLAGE_BYTES, b"6:formati1e", b"6:formati0e"), "unknown plan format 0"),
        (
            replace_once(COLLAGE_BYTES, b"6:formati1e", b"6:formati01e"),
            "corrupt or truncated (it is not valid bencode)",
        ),
        (replace_once(COLLAGE_BYTES, b"6:formati1e", b"6:formati+1e"), "not in canonical"),
        (
            replace_once(
                COLLAGE_BYTES,
                b"6:formati1e4:metad8:schedule6:@dailye",
                b"4:metad8:schedule6:@dailye6:formati1e",
            ),
            "not in canonical",
        ),
        (COLLAGE_BYTES + b"extra", "corrupt or truncated (it has bytes after its end)"),
        (replace_once(COLLAGE_BYTES, b"4:metad", b"5:extrai1e4:metad"), "unknown field 'extra'"),
        (
            encode(
                {"format": 1, "meta": {}, "tasks": {}, "toposort": [["x"]], "toposort_flatten": []}
            ),
            "field 'toposort' does not match",
        ),
        (
            encode({"format": 1, "meta": {}, "tasks": {}, "toposort": []}),
            "has no 'toposort_flatten' field",
        ),
    ],
    ids=[
        "empty",
        "png",
        "a-list",
        "truncated",
        "tampered-command",
        "future-format",
        "format-0",
        "leading-zero",
        "plus-sign",
        "unsorted-keys",
        "trailing-bytes",
        "unknown-field",
        "bad-toposort",
        "missing-field",
    ],
)
def test_bad_plans_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        Plan.from_bytes(data, "p.bencode")
    assert str(caught.value).startswith("p.bencode: ")
    assert message in str(caught.value)


def tampered(edit: dict[str, object], task: str = "collage") -> bytes:
    plan = collage_dag().encode()
    plan["tasks"][task].update(edit)
    return encode(plan)


def test_an_input_that_disagrees_with_its_upstream_output_is_refused() -> None:
    other = hashlib.sha256(b"x").hexdigest()
    entry = collage_dag().encode()["tasks"]["collage"]
    inputs = {**entry["inputs"], "blur": other}
    hashed = {k: v for k, v in entry.items() if k != "output"} | {"inputs": inputs}
    output = hashlib.sha256(encode(hashed)).hexdigest()  # self-consistent, but lies about blur
    with pytest.raises(PlanError, match=r"field inputs.blur is .*but task 'blur' outputs"):
        Plan.from_bytes(tampered({"inputs": inputs, "output": output}))


def test_an_input_naming_no_task_is_refused() -> None:
    entry = {"inputs": {"ghost": "0" * 64}}
    output = hashlib.sha256(encode(entry)).hexdigest()
    data = encode(
        {
            "format": 1,
            "meta": {},
            "tasks": {"a": {**entry, "output": output}},
            "toposort": [["a"]],
            "toposort_flatten": ["a"],
        }
    )
    with pytest.raises(PlanError, match=r"field inputs.ghost names no task of the plan"):
        Plan.from_bytes(data)


def test_a_malformed_output_id_is_refused() -> None:
    with pytest.raises(PlanError, match=r"task 'blur': field 'output' is missing or not a 64-hex"):
        Plan.from_bytes(tampered({"output": "../../etc/passwd"}, task="blur"))


def test_a_name_that_could_not_be_compiled_is_refused() -> None:
    entry = {"inputs": {}}
    output = hashlib.sha256(encode(entry)).hexdigest()
    data = encode(
        {
            "format": 1,
            "meta": {},
            "tasks": {"../x": {**entry, "output": output}},
            "toposort": [["../x"]],
            "toposort_flatten": ["../x"],
        }
    )
    with pytest.raises(PlanError, match=r"not a valid task name"):
        Plan.from_bytes(data)


def test_a_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"cannot read plan .*No such file"):
        load_plan(tmp_path / "absent.bencode")


def test_the_pydantic_model_verifies_when_validated() -> None:
    good = collage_dag().encode()
    assert Plan.model_validate(good).to_bytes() == COLLAGE_BYTES
    good["tasks"]["blur"]["sha"] = "changed"
    with pytest.raises(ValidationError, match=r"'blur': field 'output' does not match"):
        Plan.model_validate(good)


def test_the_plan_json_schema_is_available() -> None:
    schema = Plan.model_json_schema()
    assert set(schema["properties"]) >= {"format", "meta", "tasks", "toposort"}


# -- fuzzing: whatever the bytes, the reader answers with a PlanError or a verified plan ----


def load_or_plan_error(data: bytes) -> None:
    try:
        plan = Plan.from_bytes(data)
    except PlanError:
        return
    assert plan.to_bytes() == data  # anything accepted is exactly canonical


@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_plan_error(data: bytes) -> None:
    load_or_plan_error(data)


@given(st.data())
def test_mutated_plans_only_ever_raise_plan_error(data: st.DataObject) -> None:
    inserts = [b"e", b"d", b"i", b":", b"0", b"9", b"l"]
    load_or_plan_error(edited(data, COLLAGE_BYTES, st.integers(0, 255), inserts))


def test_deeply_nested_bytes_are_refused_not_crashing() -> None:
    load_or_plan_error(b"d4:meta" + b"l" * 5000 + b"e" * 5000 + b"e")
    with pytest.raises(PlanError):
        Plan.from_bytes(b"d4:meta" + b"l" * 5000 + b"e" * 5000 + b"e")


def test_dag_load_refuses_tampered_plans(tmp_path: Path) -> None:
    path = tmp_path / "p.bencode"
    path.write_bytes(replace_once(COLLAGE_BYTES, b"6f09d", b"6f09e"))
    with pytest.raises(PlanError, match=r"task 'blur'"):
        Dag.load(path)


def test_the_worked_example_in_docs_plan_format_holds() -> None:
    from a_la_mode.compile.plan import entry_bytes

    entry = entry_bytes(collage_dag().compile().tasks["download_images"])
    assert entry == b"d7:command19:python dl_images.py5:image7:collage6:inputsde3:sha5:1qe34e"
    assert hashlib.sha256(entry).hexdigest() == GOLDEN["download_images"]
    docs = (Path(__file__).parent.parent / "docs" / "plan-format.md").read_text()
    assert entry.decode() in docs and GOLDEN["download_images"] in docs


def test_a_plan_read_by_a_command_is_the_library_plan_without_pydantic(tmp_path: Path) -> None:
    """Commands read plan files as VerifiedPlan, the library as the pydantic Plan: the same
    verification, bytes, digest and content either way, and each converts to the other."""
    from a_la_mode.compile.planfile import read_plan_file

    path = tmp_path / "p.bencode"
    collage_dag().compile().save(path)
    verified, model = read_plan_file(path), load_plan(path)
    assert not isinstance(verified, Plan)
    assert verified == model and model == verified
    assert verified.to_bytes() == model.to_bytes() == path.read_bytes()
    assert verified.digest == model.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert Plan.from_verified(verified) == model
    path.write_bytes(replace_once(path.read_bytes(), b"blur", b"blub"))
    with pytest.raises(PlanError, match=r"p\.bencode: "):
        read_plan_file(path)


def test_reading_a_plan_file_and_the_command_line_need_no_pydantic() -> None:
    """'alamode run' starts about 0.1 s sooner for it (docs/benchmarks.md): guard it."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import a_la_mode.cli.main\n"
        "from a_la_mode.compile.planfile import read_plan_file\n"
        f"read_plan_file({str(FIXTURES / 'collage-0.1.2.bencode')!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'"
        " or m in ('a_la_mode.compile.dsl', 'a_la_mode.review.diff',"
        " 'a_la_mode.compile.plan', 'rich')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
