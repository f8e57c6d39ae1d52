"""A task must not change its inputs. File modes stop most users, not root: so what every
input folder holds is noted just before the command starts and compared when it ends,
before anything is published or recorded.

The note is each entry's ``lstat`` (inode, size, modification time, change time, mode)
and the set of entries: writing a file, truncating it, changing its mode, adding, removing
or renaming an entry all show, even when the modification time is put back (the change
time cannot be). A hard link made to an input file (``ln $ALAMODE_INPUT_X/f
$ALAMODE_OUTPUT/``) changes only its link count and change time, and is allowed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from a_la_mode.errors import AlamodeError

Entry = tuple[int, int, int, int, int, int]  # inode, size, mtime_ns, ctime_ns, mode, nlink
Snapshot = dict[str, Entry]  # relative path -> its lstat, "" for the folder itself


class InputChanged(AlamodeError):
    """A task changed a file of one of its inputs while it ran."""

    def __init__(self, task: str, dependency: str, path: str, what: str) -> None:
        self.task, self.dependency, self.path = task, dependency, path
        where = f"its file {path}" if path else "its folder"
        super().__init__(f"it changed its input {dependency} ({where} {what})")


class Baselines:
    """What each input folder held when a task of this run first read it, kept for the
    run: each task is compared with it (one walk per input when a task ends, not two), so
    a change between two tasks is caught as well as one during a task. A folder made anew
    (a cache that fetched its copy again) is noted anew."""

    def __init__(self) -> None:
        self._noted: dict[str, Snapshot] = {}

    def note(self, inputs: Mapping[str, str]) -> dict[str, Snapshot]:
        """The baseline of each input folder, by dependency name."""
        found = {}
        for name, folder in inputs.items():
            noted = self._noted.get(folder)
            try:
                inode = os.lstat(folder).st_ino
            except FileNotFoundError:
                inode = -1
            if noted is None or noted.get("", (None,))[0] != inode:
                noted = self._noted[folder] = _snapshot(folder)
            found[name] = noted
        return found


def note(inputs: Mapping[str, str]) -> dict[str, Snapshot]:
    """What each input folder holds now, by dependency name."""
    return {name: _snapshot(folder) for name, folder in inputs.items()}


def check(task: str, inputs: Mapping[str, str], before: Mapping[str, Snapshot]) -> None:
    """Raise InputChanged if an input folder differs from its note."""
    for name, folder in inputs.items():
        noted = before.get(name)
        if noted is None:
            continue
        if _unchanged(folder, noted):
            continue
        what = _difference(noted, _snapshot(folder))
        if what is not None:
            raise InputChanged(task, name, *what)


def _unchanged(folder: str, noted: Snapshot) -> bool:
    """Every noted entry has its noted lstat still (a folder's times move when an entry is
    added, removed or renamed in it): the fast path, one lstat per entry, no listing."""
    for path, entry in noted.items():
        try:
            if _entry(os.lstat(os.path.join(folder, path) if path else folder)) != entry:
                return False
        except FileNotFoundError:
            return False
    return True


def _snapshot(folder: str) -> Snapshot:
    """Every entry under ``folder`` (and itself, as ""), by its path relative to it."""
    found: Snapshot = {}
    try:
        found[""] = _entry(os.lstat(folder))
    except FileNotFoundError:
        return found
    stack = [(folder, "")]
    while stack:
        parent, prefix = stack.pop()
        with os.scandir(parent) as entries:
            for entry in entries:
                path = prefix + entry.name
                try:
                    found[path] = _entry(entry.stat(follow_symlinks=False))
                except FileNotFoundError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, path + "/"))
    return found


def _entry(found: os.stat_result) -> Entry:
    return (
        found.st_ino,
        found.st_size,
        found.st_mtime_ns,
        found.st_ctime_ns,
        found.st_mode,
        found.st_nlink,
    )


def _difference(before: Snapshot, after: Snapshot) -> tuple[str, str] | None:
    """(path, what happened to it) for the most telling difference that is not a hard
    link: bytes before modes, files before folders."""
    found: list[tuple[int, str, str]] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old is None:
            found.append((0, path, "was added"))
        elif new is None:
            found.append((0, path, "was removed"))
        elif old != new:
            ino, size, mtime, _, mode, nlink = old
            if (new[0], new[1], new[2], new[4]) == (ino, size, mtime, mode) and new[5] != nlink:
                continue  # linked to (or unlinked from) elsewhere: the bytes are the same
            if stat.S_ISDIR(mode) and (new[0], new[4]) == (ino, mode):
                continue  # a folder's times follow its entries, which are compared themselves
            if (new[1], new[2]) == (size, mtime) and new[4] != mode:
                found.append((2 if stat.S_ISDIR(mode) else 1, path, "had its mode changed"))
            else:  # its bytes or times changed (a time put back still moves its ctime)
                found.append((0, path, "was modified"))
    if not found:
        return None
    _, path, what = min(found)
    return path, what
