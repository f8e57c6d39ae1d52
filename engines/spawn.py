"""Start a command the way the local engine needs, without holding Python's GIL meanwhile.

``os.posix_spawn`` keeps the GIL while the kernel starts the child: with glibc that is until
the child has called ``exec``, a few hundred microseconds for ``/bin/sh``. Every other thread
of alamode (the scheduler, the other workers) stands still for that long, once per task.
Calling libc's ``posix_spawn`` through ``ctypes`` lets them run meanwhile: ``ctypes`` releases
the GIL around foreign calls. That path is used on glibc 2.34 or later, whose ``posix_spawn``
reports a failed ``exec`` (ENOENT...), knows ``POSIX_SPAWN_SETSID``, and can close every other
descriptor in the child (``posix_spawn_file_actions_addclosefrom_np``); elsewhere
``os.posix_spawn`` is used.

Either way the child gets: a new session (its own process group), SIGPIPE and SIGXFSZ at
their defaults (Python ignores both), ``/dev/null`` as standard input and ``output`` as
standard output and error, and no other descriptor: the libc path closes them all in the
child; with ``os.posix_spawn``, Python's own are close-on-exec and the local engine marks
those alamode inherited (``closes_inherited_descriptors`` says which applies).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

# glibc's values (spawn.h), the same on every Linux architecture.
_POSIX_SPAWN_SETSIGDEF = 0x04
_POSIX_SPAWN_SETSID = 0x80
_OPAQUE_SIZE = 1024  # posix_spawnattr_t is 336 bytes, the file actions 80: room to spare
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
_ENCODING, _ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def closes_inherited_descriptors() -> bool:
    """Whether ``spawn`` closes every descriptor above stderr in the child itself (glibc
    2.34+). Otherwise only Python's own descriptors are closed (they are close-on-exec), and
    the caller must mark those this process inherited."""
    return _glibc() is not None


class Environment:
    """The variables a command is given, checked and encoded when they are given, not at
    every spawn: a base (this process's own, once per engine) and, with ``overlay``, each
    command's own on top. ValueError for a name holding ``=`` or NUL, or a value holding NUL:
    C strings would cut them short silently."""

    def __init__(self, variables: Mapping[str, str], _base: Environment | None = None) -> None:
        self._base = _base
        self._entries: dict[bytes, bytes] = {}  # name -> b"name=value"
        for name, value in variables.items():
            if "\0" in value:
                raise ValueError(f"variable {name} holds a NUL character")
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"{name!r} cannot be a variable's name (it holds '=' or NUL)")
            key = name.encode(_ENCODING, _ERRORS)  # as os.fsencode, without its checks
            self._entries[key] = key + b"=" + value.encode(_ENCODING, _ERRORS)
        # base only: its entries, leaving out those an overlay replaces, and as a ctypes array
        self._kept_by: dict[frozenset[bytes], tuple[list[bytes], ctypes.Array[ctypes.c_char_p]]]
        self._kept_by = {}

    def overlay(self, variables: Mapping[str, str]) -> Environment:
        """This environment with ``variables`` added or replaced."""
        return Environment(variables, _base=self)

    def get(self, name: bytes) -> bytes | None:
        """A variable's value, encoded."""
        entry = self._entries.get(name)
        if entry is None and self._base is not None:
            return self._base.get(name)
        return None if entry is None else entry[len(name) + 1 :]

    def as_dict(self) -> dict[bytes, bytes]:
        """Every variable, name to value, encoded."""
        whole = self._base.as_dict() if self._base is not None else {}
        for name, entry in self._entries.items():
            whole[name] = entry[len(name) + 1 :]
        return whole

    def pointers(self) -> ctypes.Array[ctypes.c_char_p]:
        """The NULL-terminated ``char *envp[]`` that libc's ``posix_spawn`` takes. Only the
        overlay's entries are converted per command; the base's are copied as pointers."""
        if self._base is None:
            return self._kept(frozenset())[1]
        entries, kept = self._base._kept(self._replaced())
        count = len(entries)
        array = (ctypes.c_char_p * (count + len(self._entries) + 1))()
        # Raw pointers: the bytes they point to belong to the base's own entries, which live
        # as long as the base (the engine) does.
        ctypes.memmove(array, kept, count * ctypes.sizeof(ctypes.c_char_p))
        for index, entry in enumerate(self._entries.values(), count):
            array[index] = entry  # the array keeps the bytes alive
        return array

    def entries(self) -> list[bytes]:
        """Every ``b"name=value"``, the overlay's in place of the base's it replaces."""
        if self._base is None:
            return list(self._entries.values())
        return [*self._base._kept(self._replaced())[0], *self._entries.values()]

    def _replaced(self) -> frozenset[bytes]:
        """The base's names this overlay replaces: what its kept entries are cached by. Not
        all of the overlay's own names: those differ from task to task (ALAMODE_INPUT_<dep>),
        and each new key cost an array rebuilt and kept for good."""
        assert self._base is not None
        return frozenset(self._base._entries.keys() & self._entries.keys())

    def _kept(
        self, replaced: frozenset[bytes]
    ) -> tuple[list[bytes], ctypes.Array[ctypes.c_char_p]]:
        """The base's entries but those named in ``replaced`` (names of the base), as a list
        and a ctypes array; made once per set of names (commands replace the same few)."""
        found = self._kept_by.get(replaced)
        if found is None:
            entries = [e for name, e in self._entries.items() if name not in replaced]
            found = entries, (ctypes.c_char_p * (len(entries) + 1))(*entries)
            self._kept_by[replaced] = found
        return found


def spawn(path: str, argv: list[str], env: Environment, output: int) -> int:
    """Start ``path`` with ``argv`` and ``env``; return its pid. OSError (with ``strerror``)
    when it cannot be started, or when an argument holds a NUL."""
    libc = _glibc()
    if libc is None:
        return os.posix_spawn(
            path,
            argv,
            env.as_dict(),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, output, 1),
                (os.POSIX_SPAWN_DUP2, output, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    args = encoded_argv(path, argv)
    pid = ctypes.c_int()
    error = libc.posix_spawn(
        ctypes.byref(pid),
        path.encode(_ENCODING, _ERRORS),
        _file_actions(output),
        _attributes(),
        (ctypes.c_char_p * (len(args) + 1))(*args),
        env.pointers(),
    )
    if error:
        raise OSError(error, os.strerror(error), path)
    return pid.value


def encoded_argv(path: str, argv: list[str]) -> list[bytes]:
    """``argv`` as C strings take it; OSError when an argument holds a NUL character (a C
    string would cut it short silently)."""
    args = [arg.encode(_ENCODING, _ERRORS) for arg in argv]
    if b"\0" in b"".join(args):
        raise OSError(errno.EINVAL, "an argument holds a NUL character", path)
    return args


@functools.cache
def _glibc() -> Any:
    """libc through ctypes when it is glibc 2.34 or later (for ``closefrom``), else None."""
    try:
        name, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").split()
        if name != "glibc" or tuple(int(part) for part in version.split(".")[:2]) < (2, 34):
            return None
    except (ValueError, OSError):  # not glibc, or not a version we can read
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.posix_spawn
    except (OSError, AttributeError):
        return None
    pointer = ctypes.c_void_p
    function.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, *[pointer] * 4]
    function.restype = ctypes.c_int
    return libc


@functools.cache
def _file_actions(output: int) -> ctypes.Array[ctypes.c_char]:
    """stdin from /dev/null, stdout and stderr to ``output``, every other descriptor closed.
    Made once per descriptor number (pipes reuse a few) and only read by ``posix_spawn``."""
    libc = _glibc()
    actions = ctypes.create_string_buffer(_OPAQUE_SIZE)
    libc.posix_spawn_file_actions_init(actions)
    libc.posix_spawn_file_actions_addopen(actions, 0, b"/dev/null", os.O_RDONLY, 0)
    libc.posix_spawn_file_actions_adddup2(actions, output, 1)
    libc.posix_spawn_file_actions_adddup2(actions, output, 2)
    libc.posix_spawn_file_actions_addclosefrom_np(actions, 3)
    return actions


@functools.cache
def _attributes() -> ctypes.Array[ctypes.c_char]:
    """The spawn attributes every command shares: a new session, default signals."""
    libc = _glibc()
    attributes = ctypes.create_string_buffer(_OPAQUE_SIZE)
    signals = ctypes.create_string_buffer(_OPAQUE_SIZE)
    libc.posix_spawnattr_init(attributes)
    libc.sigemptyset(signals)
    for number in _DEFAULT_SIGNALS:
        libc.sigaddset(signals, int(number))
    libc.posix_spawnattr_setsigdefault(attributes, signals)
    libc.posix_spawnattr_setflags(
        attributes, ctypes.c_short(_POSIX_SPAWN_SETSIGDEF | _POSIX_SPAWN_SETSID)
    )
    return attributes
