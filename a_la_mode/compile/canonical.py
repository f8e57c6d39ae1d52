"""Canonical bencoding (BEP 3) of the values a spec may hold, and checking them.

Encoding and decoding are ``bencode.py``'s; reading a plan is made strict in planfile.py by
comparing the bytes with the encoding of what they decode to.

Values: ``str`` (UTF-8), ``int`` (not ``bool``), ``list``/``tuple``, ``dict`` with ``str`` keys.
Everything else is refused with the path of the offending value and a way out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import bencodepy

from a_la_mode.errors import UnrepresentableValue

# A JSON-like value that bencode holds faithfully. (Recursive aliases stay loose for mypy.)
Value = str | int | list[Any] | dict[str, Any]

MAX_DEPTH = 64
"""Deepest nesting a spec value may have; bencode.py's decoder refuses plans nested past 100."""

MAX_INT_BITS = 14_000
"""Integers past ~4,200 digits are refused: Python will not print them as decimal text."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_CODEC = bencodepy.Bencode(encoding="utf-8")  # text as str; a byte string that is not
# UTF-8 is refused when decoding (a plan holds text only)


def encode(value: Any) -> bytes:
    """The canonical bencoding of ``value`` (dict keys sorted), by bencode.py."""
    return bytes(_CODEC.encode(value))


def decode(data: bytes) -> Any:
    """``data`` decoded by bencode.py: text as ``str``. Lenient about canonical form (keys
    out of order, ``i+1e``): callers that must be strict compare ``encode`` of the result."""
    return _CODEC.decode(data)


def iter_encoded(value: Any) -> Iterator[bytes]:
    """Yield the canonical bencoding of a dict in pieces, one top-level item at a time.

    Used to write or check very large plans without holding a second copy in memory.
    """
    if type(value) is not dict:
        yield encode(value)
        return
    yield b"d"
    for key in sorted(value):
        yield encode(key) + encode(value[key])
    yield b"e"


def encode_items(mapping: dict[str, Any], keys: Iterable[str]) -> bytes:
    """The bencoded key/value pairs of ``mapping`` for ``keys``, without ``d``/``e``."""
    return encode({key: mapping[key] for key in keys})[1:-1]


def normalise(value: Any, path: str | Callable[[], str]) -> Value:
    """Return a private copy of ``value`` in plain plan form (tuples become lists).

    Raises UnrepresentableValue naming ``path`` (e.g. ``tasks.blur.spec.threshold``; a
    callable is only called on failure) and the fix when any part of ``value`` has no
    faithful bencode form.
    """
    try:
        return _copy_checked(value, 0)
    except (_Unrepresentable, RecursionError):
        where = path if isinstance(path, str) else path()
        raise _locate(value, where, 0) from None


class _Unrepresentable(Exception):
    pass


def _copy_checked(value: Any, depth: int) -> Value:
    kind = type(value)
    if kind is str:
        if not value.isascii() and not _is_utf8(value):
            raise _Unrepresentable
        return value  # type: ignore[no-any-return]
    if kind is int:
        if value.bit_length() > MAX_INT_BITS:
            raise _Unrepresentable
        return value  # type: ignore[no-any-return]
    if depth >= MAX_DEPTH:
        raise _Unrepresentable
    if kind is dict:
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or _is_utf8(key)):
                raise _Unrepresentable
            if type(item) is str and item.isascii():  # the common case, inline
                copied[key] = item
            else:
                copied[key] = _copy_checked(item, depth + 1)
        return copied
    if kind is list or kind is tuple:
        return [_copy_checked(item, depth + 1) for item in value]
    raise _Unrepresentable


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _locate(value: Any, path: str, depth: int) -> UnrepresentableValue:
    """Walk ``value`` slowly to find the first unrepresentable part and explain it."""
    kind = type(value)
    if kind is str:
        return UnrepresentableValue(
            f"{path} is not valid UTF-8 text (it holds a lone surrogate); "
            "remove the character or encode the data as hex/base64"
        )
    if depth >= MAX_DEPTH:
        return UnrepresentableValue(
            f"{path} is nested deeper than {MAX_DEPTH} levels; flatten it or store it as a string"
        )
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return UnrepresentableValue(
                    f"{path} has the key {key!r} of type {type(key).__name__}; "
                    f"dict keys must be str: write it as {str(key)!r}"
                )
            if not _is_utf8(key):
                return UnrepresentableValue(f"{path} has a key that is not valid UTF-8 text")
            try:
                _copy_checked(item, depth + 1)
            except (_Unrepresentable, RecursionError):
                return _locate(item, join_path(path, key), depth + 1)
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            try:
                _copy_checked(item, depth + 1)
            except (_Unrepresentable, RecursionError):
                return _locate(item, f"{path}[{index}]", depth + 1)
    return UnrepresentableValue(f"{path} {_why_not(value, path)}")


# Spec keys that engines read as whole numbers: a float there wants an integer, not a string.
WHOLE_NUMBER_KEYS = {"timeout": "whole seconds", "retries": "a whole number of retries"}


def _why_not(value: Any, path: str = "") -> str:
    if type(value) is int:
        return "is an integer of over 4,000 digits; store it as a string"
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    if isinstance(value, bool):
        return (
            f"is a bool ({shown}); bencode has no booleans: "
            f"write 1/0 or the string '{str(value).lower()}'"
        )
    key = path.rsplit(".", 1)[-1]
    if isinstance(value, float) and ".spec." in path and key in WHOLE_NUMBER_KEYS:
        low, high = int(value), int(value) + (value != int(value))
        either = f"{low}" if low == high else f"{low} or {high}"
        return f"is a float ({shown}); {key} takes {WHOLE_NUMBER_KEYS[key]}: write {either}"
    if isinstance(value, float):
        return (
            f"is a float ({shown}); bencode has no floats and their text form varies: "
            f"write the string '{value!r}' or a scaled integer"
        )
    if value is None:
        return "is None; bencode has no null: leave the key out or use an empty string ''"
    if isinstance(value, bytes | bytearray):
        return "is bytes; use str (e.g. data.decode('utf-8')) or hex/base64 text"
    if isinstance(value, set | frozenset):
        return f"is a {type(value).__name__} ({shown}); use a sorted list"
    if isinstance(value, str | int | dict | list | tuple):
        return (
            f"is a {type(value).__name__} subclass ({shown}); "
            "convert it to a plain str, int, list or dict"
        )
    return (
        f"is a {type(value).__name__} ({shown}); a spec may hold only str, int, list and dict: "
        "convert it, e.g. to str"
    )


def join_path(path: str, key: str) -> str:
    """Append a dict key to a dotted value path, bracketing keys that are not identifiers."""
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"
