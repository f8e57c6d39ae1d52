"""The canonical encoder: same bytes as bencode.py, deterministic, and strict about values."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from collections import OrderedDict
from typing import Any

import bencodepy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from a_la_mode import UnrepresentableValue
from a_la_mode.compile.canonical import MAX_DEPTH, encode, iter_encoded, normalise

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
values = st.recursive(
    st.integers() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=25,
)


@given(values)
def test_encoding_matches_bencode_py_byte_for_byte(value: Any) -> None:
    assert encode(value) == bencodepy.encode(value)


@given(values)
def test_decoding_the_encoding_gives_the_value_back(value: Any) -> None:
    decoded = bencodepy.Bencode(encoding="utf-8").decode(encode(value))
    assert decoded == value


@given(st.dictionaries(text, values, max_size=5))
def test_encoding_in_pieces_joins_to_the_whole(value: dict[str, Any]) -> None:
    assert b"".join(iter_encoded(value)) == encode(value)


def test_keys_sort_by_utf8_bytes_not_by_insertion() -> None:
    assert encode({"b": 1, "a": 2, "é": 3, "Z": 4}) == b"d1:Zi4e1:ai2e1:bi1e2:\xc3\xa9i3ee"


def test_numbers_are_canonical() -> None:
    assert encode(0) == b"i0e"
    assert encode(-7) == b"i-7e"
    assert encode(2**100) == b"i1267650600228229401496703205376e"


def test_bytes_do_not_depend_on_hash_seed() -> None:
    program = (
        "from a_la_mode.compile.canonical import encode;"
        "import sys; sys.stdout.write(encode({k: [k, {k: 1}] for k in 'zyxwvu'}).hex())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outputs) == 1


def test_normalise_copies_and_turns_tuples_into_lists() -> None:
    original = {"args": ("a", "b"), "env": {"X": "1"}}
    copied = normalise(original, "spec")
    assert copied == {"args": ["a", "b"], "env": {"X": "1"}}
    original["env"]["X"] = "2"
    assert copied["env"] == {"X": "1"}  # type: ignore[index]


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "path", "hint"),
    [
        ({"threshold": 0.5}, "spec.threshold", "is a float (0.5)"),
        ({"debug": True}, "spec.debug", "is a bool (True)"),
        ({"x": None}, "spec.x", "is None"),
        ({"blob": b"\x00"}, "spec.blob", "is bytes"),
        ({"tags": {"a"}}, "spec.tags", "use a sorted list"),
        ({"args": ["ok", 1.5]}, "spec.args[1]", "is a float"),
        ({"env": {"A": {"B": object()}}}, "spec.env.A.B", "is a object"),
        ({"my key": {"x": None}}, "spec['my key'].x", "is None"),
        ({"n": Colour.RED}, "spec.n", "subclass"),
        ({"text": "bad \udc80"}, "spec.text", "not valid UTF-8"),
        ({"big": 10**5000}, "spec.big", "over 4,000 digits"),
    ],
    ids=[
        "float",
        "bool",
        "none",
        "bytes",
        "set",
        "nested-float",
        "object",
        "odd-key",
        "int-enum",
        "surrogate",
        "huge-int",
    ],
)
def test_unrepresentable_values_are_refused_with_their_path(
    value: Any, path: str, hint: str
) -> None:
    with pytest.raises(UnrepresentableValue) as caught:
        normalise(value, "spec")
    assert str(caught.value).startswith(path + " ")
    assert hint in str(caught.value)


def test_non_string_keys_are_refused_with_the_fix() -> None:
    with pytest.raises(UnrepresentableValue, match=r"spec.env has the key 3 of type int.*'3'"):
        normalise({"env": {3: "x"}}, "spec")


def test_ordered_dicts_and_other_mappings_are_refused_not_guessed() -> None:
    with pytest.raises(UnrepresentableValue, match="subclass"):
        normalise({"o": OrderedDict(a=1)}, "spec")


def test_nesting_deeper_than_the_reader_allows_is_refused() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(UnrepresentableValue, match="nested deeper than"):
        normalise({"deep": deep}, "spec")
