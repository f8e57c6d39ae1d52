"""The strict reader accepts exactly the canonical encodings, as decoding with bencode.py and
re-encoding to compare did, and reads them to the same values."""

from __future__ import annotations

from typing import Any

import bencodepy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from a_la_mode.bdecode import Corrupt, Reader
from a_la_mode.canonical import encode

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
values = st.recursive(
    st.integers() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
BENCODE_PY = bencodepy.Bencode(encoding="utf-8")


def strict(data: bytes) -> Any:
    """The value, if ``data`` is canonical bencode; else ValueError."""
    reader = Reader(data)
    try:
        value, end = reader.value(0, 0, "it")
    except IndexError:
        raise Corrupt("truncated") from None
    reader.finish(end)
    if reader.fault is not None:
        raise ValueError("not canonical")
    return value


def lenient_then_compared(data: bytes) -> Any:
    """What plans were read with before: bencode.py, then the bytes compared with the
    canonical encoding of what it decoded."""
    try:
        value = BENCODE_PY.decode(data)
    except bencodepy.BencodeDecodeError:
        raise ValueError("not bencode") from None
    if encode(value) != data:
        raise ValueError("not canonical")
    return value


def outcome(read: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "read", read(data)
    except ValueError:  # Corrupt is one
        return "refused", None


@given(values)
def test_every_canonical_encoding_reads_back_to_its_value(value: Any) -> None:
    assert strict(encode(value)) == value


@given(st.binary(max_size=60))
def test_random_bytes_are_judged_as_before(data: bytes) -> None:
    assert outcome(strict, data) == outcome(lenient_then_compared, data)


@given(values, st.data())
def test_edited_encodings_are_judged_as_before(value: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        edit = data.draw(st.sampled_from(["insert", "delete", "flip"]))
        if edit == "insert":
            raw[at:at] = data.draw(
                st.sampled_from([b"e", b"d", b"l", b"i", b":", b"0", b"1", b"-"])
            )
        elif raw and at < len(raw):
            if edit == "delete":
                del raw[at]
            else:
                raw[at] = data.draw(st.sampled_from(b"edli:0123456789-+ _\xff"))
    assert outcome(strict, bytes(raw)) == outcome(lenient_then_compared, bytes(raw))


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"i01e", "corrupt"),  # leading zero: not bencode at all
        (b"i-0e", "corrupt"),
        (b"i+1e", "not canonical"),  # bencode.py reads it; it is not how 1 is written
        (b"i1_0e", "not canonical"),
        (b"d1:bi1e1:ai2ee", "not canonical"),  # keys out of order
        (b"d1:ai1e1:ai2ee", "not canonical"),  # a key twice
        (b"02:ab", "corrupt"),
        (b"3:ab", "corrupt"),  # truncated
        (b"1:\xff", "corrupt"),  # not UTF-8
        (b"l" * 102 + b"e" * 102, "corrupt"),  # deeper than bencode.py reads
        (b"i1ei2e", "corrupt"),  # data after the value
    ],
)
def test_faults_are_told_apart(data: bytes, verdict: str) -> None:
    reader = Reader(data)
    try:
        _, end = reader.value(0, 0, "it")
        reader.finish(end)
    except Corrupt:
        assert verdict == "corrupt"
        return
    assert verdict == "not canonical" and reader.fault == "it"
