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
from typing import Any

# glibc's values (spawn.h), the same on every Linux architecture.
_POSIX_SPAWN_SETSIGDEF = 0x04
_POSIX_SPAWN_SETSID = 0x80
_OPAQUE_SIZE = 1024  # posix_spawnattr_t is 336 bytes, the file actions 80: room to spare
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def closes_inherited_descriptors() -> bool:
    """Whether ``spawn`` closes every descriptor above stderr in the child itself (glibc
    2.34+). Otherwise only Python's own descriptors are closed (they are close-on-exec), and
    the caller must mark those this process inherited."""
    return _glibc() is not None


def spawn(path: str, argv: list[str], env: dict[bytes, bytes], output: int) -> int:
    """Start ``path`` with ``argv`` and ``env``; return its pid. OSError (with ``strerror``)
    when it cannot be started. No value in ``env`` may hold a NUL: the caller checks (the
    local engine does, for what a task adds to alamode's own environment)."""
    libc = _glibc()
    if libc is None:
        return os.posix_spawn(
            path,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, output, 1),
                (os.POSIX_SPAWN_DUP2, output, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    args = [os.fsencode(arg) for arg in argv]
    if b"\0" in b"".join(args) or any(b"=" in key or b"\0" in key for key in env):
        # C strings would cut them short silently; os.posix_spawn refuses them too
        raise OSError(errno.EINVAL, "an argument or variable name holds a NUL or '='", path)
    variables = [key + b"=" + value for key, value in env.items()]
    pid = ctypes.c_int()
    error = libc.posix_spawn(
        ctypes.byref(pid),
        os.fsencode(path),
        _file_actions(output),
        _attributes(),
        (ctypes.c_char_p * (len(args) + 1))(*args),
        (ctypes.c_char_p * (len(variables) + 1))(*variables),
    )
    if error:
        raise OSError(error, os.strerror(error), path)
    return pid.value


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
