"""Strict bencode reading: decode, and note where the bytes are not canonical, in one pass.

A plan file must be exactly the canonical encoding of what it decodes to. Decoding with a
lenient decoder and then re-encoding everything to compare took longer than the decoding;
here each item is checked as it is read: integers without a sign or leading zeros, string
lengths in plain digits, dictionary keys in strictly increasing byte order. What is not
bencode at all raises ``Corrupt``. What is bencode but not canonical is noted (the first
place only) in ``Reader.fault``, so the caller can report the plan's outer faults first.
Strings are UTF-8 text. The rules match what ``bencode.py`` decodes and our encoder writes.
"""

from __future__ import annotations

import re
from typing import Any

MAX_DEPTH = 100  # nested lists and dictionaries, as bencode.py allows
_CANONICAL_INT = re.compile(rb"-?[1-9][0-9]*|0")
_LENGTH = re.compile(rb"(0|[1-9][0-9]*):")  # a string's length: digits, no leading zero
_DIGIT_0, _DIGIT_9, _DICT, _LIST, _INT = 48, 57, 100, 108, 105
# What ``Corrupt`` says: the reason, as a reader of an error message needs it.
ENDS_EARLY = "it ends before its last value does"
_NOT_BENCODE = "it is not valid bencode"
_NOT_UTF8 = "a string in it is not UTF-8 text"
_TOO_DEEP = f"it nests lists and dictionaries deeper than {MAX_DEPTH} levels"
_AFTER_END = "it has bytes after its end"


class Corrupt(ValueError):
    """The bytes are not bencode: truncated, malformed, too deep, or text that is not
    UTF-8."""


class Reader:
    """Reads values from ``data``; ``fault`` names the first non-canonical place."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fault: str | None = None

    def note(self, where: str) -> None:
        """Remember the first place that is not canonical."""
        if self.fault is None:
            self.fault = where

    def value(self, pos: int, depth: int, where: str) -> tuple[Any, int]:
        """The value starting at ``pos`` and the position after it."""
        data = self.data
        try:
            kind = data[pos]
        except IndexError:
            raise Corrupt(ENDS_EARLY) from None
        if _DIGIT_0 <= kind <= _DIGIT_9:  # a string: ``raw`` and ``_text``, inlined (a
            # plan is mostly strings; the two calls cost 9 % of reading a large plan)
            header = _LENGTH.match(data, pos)
            if header is None:
                raise Corrupt(_NOT_BENCODE)
            start = header.end()
            end = start + int(header[1])
            if end > len(data):
                raise Corrupt(ENDS_EARLY)
            try:
                return data[start:end].decode(), end
            except UnicodeDecodeError:
                raise Corrupt(_NOT_UTF8) from None
        if kind == _DICT:
            return self.dictionary(pos, depth, where)
        if kind == _LIST:
            if depth > MAX_DEPTH:
                raise Corrupt(_TOO_DEEP)
            items = []
            pos += 1
            while data[pos : pos + 1] != b"e":
                item, pos = self.value(pos, depth + 1, where)
                items.append(item)
            return items, pos + 1
        if kind == _INT:
            return self.integer(pos, where)
        raise Corrupt(_NOT_BENCODE)

    def integer(self, pos: int, where: str) -> tuple[int, int]:
        data = self.data
        end = data.find(b"e", pos + 1)
        if end < 0:
            raise Corrupt(ENDS_EARLY)
        digits = data[pos + 1 : end]
        try:
            number = int(digits)
        except ValueError:
            raise Corrupt(_NOT_BENCODE) from None
        if digits.startswith((b"0", b"-0")) and digits != b"0":
            raise Corrupt(_NOT_BENCODE)  # leading zeros: never bencode
        if not _CANONICAL_INT.fullmatch(digits):
            self.note(where)  # a sign, spaces or underscores: bencode.py reads them
        return number, end + 1

    def dictionary(self, pos: int, depth: int, where: str) -> tuple[dict[str, Any], int]:
        if depth > MAX_DEPTH:
            raise Corrupt(_TOO_DEEP)
        data = self.data
        result: dict[str, Any] = {}
        previous: bytes | None = None
        pos += 1
        while data[pos : pos + 1] != b"e":
            key, pos, previous = self.key(pos, previous, where)
            result[key], pos = self.value(pos, depth + 1, where)
        return result, pos + 1

    def key(self, pos: int, previous: bytes | None, where: str) -> tuple[str, int, bytes]:
        """A dictionary key, the position after it, and its bytes. Each key must sort after
        ``previous`` (the last key's bytes, None for the first), or the dictionary is not
        canonical."""
        raw, end = self.raw(pos)  # keys are strings
        if previous is not None and raw <= previous:
            self.note(where)
        return _text(raw), end, raw

    def raw(self, pos: int) -> tuple[bytes, int]:
        """A string's bytes and the position after it: its length in digits without leading
        zeros, ``:``, then that many bytes."""
        data = self.data
        header = _LENGTH.match(data, pos)
        if header is None:
            raise Corrupt(_NOT_BENCODE)
        start = header.end()
        end = start + int(header[1])
        if end > len(data):
            raise Corrupt(ENDS_EARLY)
        return data[start:end], end

    def finish(self, pos: int) -> None:
        """The top value must end where the data does."""
        if pos != len(self.data):
            raise Corrupt(_AFTER_END)


def _text(raw: bytes) -> str:
    """A string's bytes as UTF-8 text."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise Corrupt(_NOT_UTF8) from None
