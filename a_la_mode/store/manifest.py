"""What an output holds, and the one policy for files that are not plain files.

A manifest lists every entry of an output by its relative path: a regular file with its
size and sha256, or a symbolic link with its target. The policy, the same on every store
and for every command:

- symbolic links that stay inside the output (relative, never through ``..`` past its top)
  are kept and recorded with their target, so changing one is a change ``verify`` sees;
- links that leave the output (absolute, or climbing out of it), FIFOs, sockets and
  devices fail the task, with a one-line reason naming the entry;
- a file with more than one hard link is copied before it is made read-only, so that
  publishing never changes a file outside the output (the other names keep their inode).

Every path read from a store (a marker, a journal, a manifest) is checked before anything
is written from it: relative, normalised, no ``..``, no NUL, no backslash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import stat
from pathlib import Path
from typing import Any

from a_la_mode.errors import StoreError

SMALL_FILE_BYTES = 1 << 16  # hashed from one read; larger files in file_digest's chunks


class OutputRefused(StoreError):
    """A task's output holds something an output may not (see the module's policy)."""


class UnsafeManifest(StoreError):
    """A manifest from a store names a path outside its output: it is never followed."""


class Manifest:
    """Every entry of an output: ``files`` (path -> (size, sha256)) and ``links`` (path ->
    target of a symbolic link inside the output)."""

    __slots__ = ("_json", "files", "links")

    def __init__(
        self, files: dict[str, tuple[int, str]], links: dict[str, str] | None = None
    ) -> None:
        self.files = files
        self.links = links or {}
        self._json: str | None = None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Manifest) and self.files == other.files and self.links == other.links
        )

    __hash__ = None  # type: ignore[assignment]  # it holds a dict

    def __repr__(self) -> str:
        return f"Manifest({self.files!r}, {self.links!r})"

    @property
    def total_bytes(self) -> int:
        return sum(size for size, _ in self.files.values())

    def entries(self) -> list[str]:
        """Every path, files and links."""
        return [*self.files, *self.links]

    def to_dict(self) -> dict[str, Any]:
        """``{path: [size, sha256]}`` for files and ``{path: {"link": target}}`` for links,
        sorted: the form written in manifests and markers."""
        entries: dict[str, Any] = {p: [s, h] for p, (s, h) in self.files.items()}
        entries.update({p: {"link": t} for p, t in self.links.items()})
        return dict(sorted(entries.items()))

    @classmethod
    def from_dict(cls, entries: Any) -> Manifest:
        """Read a manifest from a store; UnsafeManifest if it is malformed or names a path
        (or a link target) outside its output."""
        if not isinstance(entries, dict):
            raise UnsafeManifest("a manifest is not a JSON object")
        files: dict[str, tuple[int, str]] = {}
        links: dict[str, str] = {}
        for path, value in entries.items():
            check_relative(path)
            if isinstance(value, dict) and isinstance(value.get("link"), str):
                links[path] = check_link(path, value["link"])
            elif isinstance(value, list) and len(value) == 2:
                size, digest = value
                if type(size) is not int or size < 0 or not isinstance(digest, str):
                    raise UnsafeManifest(f"manifest entry {path!r} is malformed")
                files[path] = (size, digest)
            else:
                raise UnsafeManifest(f"manifest entry {path!r} is malformed")
        return cls(files, links)

    def to_json(self) -> str:
        """``to_dict`` as compact JSON, made once: the journal line and the success record
        of an output both hold it."""
        if self._json is None:
            self._json = json.dumps(self.to_dict(), separators=(",", ":"))
        return self._json

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            return cls.from_dict(json.loads(text))
        except ValueError:
            raise UnsafeManifest("a manifest is not JSON") from None

    @classmethod
    def of_directory(cls, root: str | Path, deep: bool = True) -> Manifest:
        """What is below ``root`` now (sizes only, digests left empty, unless ``deep``).
        Links are read, never followed; anything else that is not a regular file is listed
        as a file of size -1, so it never matches a manifest."""
        files: dict[str, tuple[int, str]] = {}
        links: dict[str, str] = {}
        for path, entry, info in _walk(str(root)):
            if stat.S_ISLNK(info.st_mode):
                links[path] = os.readlink(entry)
            elif stat.S_ISREG(info.st_mode):
                files[path] = hash_file(entry) if deep else (info.st_size, "")
            elif not stat.S_ISDIR(info.st_mode):
                files[path] = (-1, "")
        return cls(files, links)


def check_relative(path: object) -> str:
    """``path`` if it is a safe relative path inside an output, else UnsafeManifest."""
    if (
        not isinstance(path, str)
        or not path
        or "\0" in path
        or "\\" in path
        or path.startswith("/")
        or posixpath.normpath(path) != path
        or path.split("/")[0] in ("..", ".")
    ):
        raise UnsafeManifest(f"manifest path {path!r} is not a plain relative path")
    return path


def check_link(path: str, target: str) -> str:
    """``target`` if a link at ``path`` pointing there stays inside the output."""
    if not _stays_inside(path, target):
        raise UnsafeManifest(f"manifest link {path!r} -> {target!r} leaves its output")
    return target


def _stays_inside(path: str, target: str) -> bool:
    if not target or target.startswith("/") or "\0" in target:
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return joined != ".." and not joined.startswith("../")


def seal(root: str | Path) -> Manifest:
    """Check ``root`` against the policy, then hash every file and take away every write
    permission below it. ``root`` itself stays writable until it is renamed into place.
    OutputRefused, with nothing changed, for an entry the policy refuses."""
    found = list(_walk(str(root)))
    for path, entry, info in found:
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(entry)
            if not _stays_inside(path, target):
                raise OutputRefused(
                    f"its output holds a symbolic link leaving the output: {path} -> {target} "
                    "(copy the file in, or link inside the output)"
                )
        elif not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise OutputRefused(
                f"its output holds a {_kind(info.st_mode)}, {path}: an output holds files, "
                "folders and links inside it"
            )
    files: dict[str, tuple[int, str]] = {}
    links: dict[str, str] = {}
    for path, entry, info in reversed(found):  # a folder's entries before the folder
        if stat.S_ISLNK(info.st_mode):
            links[path] = os.readlink(entry)
        elif stat.S_ISDIR(info.st_mode):
            read_only(entry)
        else:
            if info.st_nlink > 1:
                _unshare(entry)
            files[path] = hash_file(entry, read_only=True)
    return Manifest(dict(sorted(files.items())), dict(sorted(links.items())))


def _walk(root: str, prefix: str = "") -> Any:
    """(relative path, path, lstat) of everything below ``root``, a folder before its
    entries; links are not followed."""
    with os.scandir(root) as entries:
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            yield prefix + entry.name, entry.path, info
            if stat.S_ISDIR(info.st_mode):
                yield from _walk(entry.path, f"{prefix}{entry.name}/")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _unshare(path: str) -> None:
    """Replace a file that has other hard links with a private copy of it, so that making
    it read-only changes nothing outside the output."""
    copy = f"{path}.alamode-unshare"
    shutil.copy2(path, copy)
    os.replace(copy, path)


def hash_file(path: str, read_only: bool = False) -> tuple[int, str]:
    """The size and sha256 of the file at ``path``, read to its end; ``read_only`` takes
    away its write permissions too, through the same descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        status = os.fstat(fd)
        if status.st_size <= SMALL_FILE_BYTES:
            data = os.read(fd, status.st_size + 1)
            if len(data) > status.st_size:  # it grew meanwhile: read it to its end
                while chunk := os.read(fd, SMALL_FILE_BYTES):
                    data += chunk
            result = len(data), hashlib.sha256(data).hexdigest()
        else:
            with open(fd, "rb", closefd=False) as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            result = os.fstat(fd).st_size, digest
        if read_only:
            os.fchmod(fd, status.st_mode & ~0o222)
        return result
    finally:
        os.close(fd)


def mismatch(folder: Path, manifest: Manifest, deep: bool) -> str | None:
    """How what is under ``folder`` differs from ``manifest`` (sizes and link targets only,
    unless ``deep``), or None."""
    found = Manifest.of_directory(folder, deep)
    for name, (size, digest) in manifest.files.items():
        if name not in found.files:
            return f"its file {name} is missing"
        if found.files[name][0] != size or (deep and found.files[name][1] != digest):
            return f"its file {name} was modified"
    for name, target in manifest.links.items():
        if name not in found.links:
            return f"its link {name} is missing"
        if found.links[name] != target:
            return f"its link {name} was changed"
    extra = sorted(set(found.entries()) - set(manifest.entries()))
    if extra:
        return f"it has an unexpected file {extra[0]}"
    return None


def read_only(path: str) -> None:
    os.chmod(path, os.stat(path).st_mode & ~0o222)


def make_writable(root: Path) -> None:
    """Give back write permission to ``root`` and the folders below it, to remove them.
    Files are left alone: removing a file needs its folder writable, not the file, and a
    file may be linked from elsewhere."""
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o700)
    root.chmod(root.stat().st_mode | 0o700)


def remove_tree(root: Path) -> None:
    """Remove a (possibly read-only) directory tree; missing is fine."""
    if not os.path.lexists(root):
        return
    with contextlib.suppress(OSError):
        make_writable(root)
    shutil.rmtree(root, ignore_errors=True)
