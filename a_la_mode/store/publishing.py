"""Publishing an output into a directory: the journal a runner keeps of what it published,
the rename into place, the trash, and flushing to disk.

The success protocol: hash the files into a manifest, append it to the runner's journal,
rename the staging directory to ``outputs/<id>`` (atomic), make the files durable, and
only then record the success. A runner killed between the rename and the record leaves its
journal behind: the next one adopts the outputs that still match it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import itertools
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from a_la_mode.errors import StoreError
from a_la_mode.store.manifest import Manifest, read_only, remove_tree
from a_la_mode.store.records import checked_id, random_suffix

# What renaming a staging directory onto an output's path says when something is there.
_IN_THE_WAY = frozenset({errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR})
SYNCFS_FROM_FILES = 4  # measured: one syncfs beats per-file fsyncs from a few files on
STAGED = itertools.count()  # numbers this process's staging directories


def rename_into_place(output_id: str, staging: str | Path, target: str, trash: Path) -> None:
    """Rename ``staging`` to ``target``, discarding an orphan in the way (into ``trash``),
    then make it read-only."""
    try:
        os.rename(staging, target)
    except OSError as err:
        if err.errno not in _IN_THE_WAY:
            raise
        # an orphan of a runner killed before recording success: make way for ours
        discard(Path(target), trash)
        try:
            os.rename(staging, target)
        except OSError as again:
            if again.errno not in _IN_THE_WAY:
                raise
            raise StoreError(f"output {output_id[:12]} appeared while publishing") from None
    # Read-only only now: moving a directory to another parent rewrites its '..' entry,
    # which needs write permission on it (only root's override would skip that).
    read_only(target)


def discard(folder: Path, trash_dir: Path) -> None:
    """Remove a (read-only) output directory: first renamed into ``trash_dir`` in one step,
    so no reader sees it half-deleted; the trash is cleaned on the next start. Made writable
    first: moving a directory to another parent needs write permission on it."""
    trash = trash_dir / f"trash-{random_suffix()}"
    folder.chmod(folder.stat().st_mode | 0o200)
    os.rename(folder, trash)
    remove_tree(trash)


def set_aside(folder: Path, aside: Path) -> None:
    """Move an output out of ``outputs/`` to ``aside`` (revoked/ or replaced/), read-only."""
    aside.parent.mkdir(exist_ok=True)
    folder.chmod(folder.stat().st_mode | 0o200)  # moving a folder rewrites its '..'
    os.rename(folder, aside)
    read_only(str(aside))


def flush(files: list[Path], filesystem: Path) -> None:
    """Flush ``files`` to disk: one ``syncfs`` of their filesystem for several files (one
    journal commit), else an fsync per file."""
    if len(files) >= SYNCFS_FROM_FILES and _syncfs(filesystem):
        return
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Journal:
    """The outputs a runner published, one JSON line each (output ID and manifest), appended
    before each rename. Removed when the run ends, with every output recorded; left behind
    by a runner that was killed, for the next one to adopt what still matches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()  # publishing happens on several worker threads

    def append(self, output_id: str, manifest: Manifest) -> None:
        """One line: ``{"output":ID,"files":MANIFEST}``."""
        line = f'{{"output":{json.dumps(output_id)},"files":{manifest.to_json()}}}\n'
        os.write(self.descriptor(), line.encode())

    def descriptor(self) -> int:
        """The journal open for appending, opened on first use."""
        with self._lock:
            if self._fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                self._fd = os.open(self.path, flags, 0o644)
            return self._fd

    def remove(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.path.unlink(missing_ok=True)

    @staticmethod
    def read(path: Path) -> Iterator[tuple[str, Manifest]]:
        """Its entries; a torn last line (killed mid-write) is skipped."""
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                yield checked_id(entry["output"]), Manifest.from_dict(entry["files"])
            except (ValueError, KeyError, TypeError, AttributeError, StoreError):
                continue


def _syncfs(path: Path) -> bool:
    """syncfs(2) on the filesystem holding ``path``; False where it is unavailable."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
