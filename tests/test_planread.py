"""The compiled plan reader (_planread.c) reads every byte string as the Python reader does:
the same values, the same first non-canonical place, the same first task whose output ID
does not match, and the same reason when the bytes are not bencode."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from a_la_mode import compile_plan, native, planfile
from a_la_mode.bdecode import Corrupt
from a_la_mode.canonical import encode
from a_la_mode.dsl import TaskDef
from tests.conftest import collage_dag, edited

pytestmark = pytest.mark.skipif(
    native.plan_reader is None, reason="_planread.c: not built here, or ALAMODE_NATIVE=0"
)

COLLAGE = collage_dag().compile().to_bytes()
LATTICE = compile_plan(
    {"owner": "ü"},
    [
        TaskDef(
            f"t{i}",
            {"command": "touch $ALAMODE_OUTPUT/x", "n": i, "env": {"A": "1"}},
            [f"t{i - 3}", f"t{i - 1}"] if i >= 3 else [],
        )
        for i in range(60)
    ],
).to_bytes()


def both(data: bytes) -> tuple[Any, Any]:
    """What each reader makes of ``data``: its result, or the reason it gave."""

    def outcome(decode: Any) -> Any:
        try:
            return "read", decode(data)
        except Corrupt as err:
            return "corrupt", str(err)

    assert native.plan_reader is not None
    return outcome(lambda d: native.plan_reader.decode(d, Corrupt)), outcome(
        planfile._decode_in_python
    )


def assert_same(data: bytes) -> Any:
    compiled, python = both(data)
    assert compiled == python
    return compiled


@pytest.mark.parametrize("data", [COLLAGE, LATTICE], ids=["collage", "lattice"])
def test_real_plans_read_the_same(data: bytes) -> None:
    kind, (top, fault, mismatch) = assert_same(data)
    assert kind == "read" and fault is None and mismatch is None
    assert encode(top) == data


def test_every_truncation_is_refused_for_the_same_reason() -> None:
    reasons = {assert_same(COLLAGE[:end])[1] for end in range(1, len(COLLAGE))}
    assert "it ends before its last value does" in reasons
    assert "it is not valid bencode" in reasons


def test_an_edited_spec_is_the_same_mismatch() -> None:
    edited = COLLAGE.replace(b"6f09d", b"6f09e", 1)
    kind, (_, fault, mismatch) = assert_same(edited)
    assert kind == "read" and fault is None
    assert mismatch is not None and mismatch[0] == "blur"


NOT_CANONICAL = ("read", "field 'meta'")
NOT_BENCODE = ("corrupt", "it is not valid bencode")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"i+1e", NOT_CANONICAL),  # bencode.py reads these; we never write them
        (b"i1_0e", NOT_CANONICAL),
        (b"i 7e", NOT_CANONICAL),
        (b"i-0e", NOT_BENCODE),
        (b"i00e", NOT_BENCODE),
        (b"ie", NOT_BENCODE),
        (b"i-e", NOT_BENCODE),
        (b"i" + b"9" * 30 + b"e", ("read", None)),  # beyond 64 bits
        (b"i" + b"7" * 5000 + b"e", NOT_BENCODE),  # beyond what Python's int() reads
        (b"1:\xff", ("corrupt", "a string in it is not UTF-8 text")),
        (
            b"l" * 120 + b"e" * 120,
            ("corrupt", "it nests lists and dictionaries deeper than 100 levels"),
        ),
        (b"99999999999999999999:x", ("corrupt", "it ends before its last value does")),
        (b"01:x", NOT_BENCODE),
    ],
)
def test_odd_values_in_meta_read_the_same(value: bytes, expected: tuple[str, Any]) -> None:
    data = COLLAGE.replace(b"4:metad", b"4:metad1:0" + value, 1)
    kind, result = assert_same(data)
    assert (kind, result[1] if kind == "read" else result) == expected


def test_keys_out_of_order_are_the_same_fault_at_each_level() -> None:
    top_level = COLLAGE.replace(b"4:meta", b"4:zeta", 1)
    in_tasks = COLLAGE.replace(b"4:blur", b"4:zzzz", 1)
    faults = {assert_same(data)[1][1] for data in (top_level, in_tasks)}
    assert faults == {"the plan", "field 'tasks'"}


@given(st.data())
def test_edited_plans_read_the_same(data: st.DataObject) -> None:
    plan = data.draw(st.sampled_from([COLLAGE, LATTICE]))
    flips = st.sampled_from(b"edli:0123456789-+ _\xff\x80azAZ")
    inserts = [b"e", b"d", b"l", b"i", b":", b"0", b"1"]
    assert_same(edited(data, plan, flips, inserts, first=1))  # the caller checks the first byte


@given(st.binary(max_size=80))
def test_random_bytes_read_the_same(data: bytes) -> None:
    assert_same(b"d" + data)
