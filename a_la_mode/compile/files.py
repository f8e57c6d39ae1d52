"""File digests: a task's ``files`` (the scripts and folders it depends on), hashed into its
spec at compile time, so that editing one reruns exactly the tasks that list it.

    files: ["transform_images.py", "sql/"]

becomes, before the spec is hashed,

    files: {"transform_images.py": "<sha256>", "sql/": {"a.sql": "<sha256>", ...}}

Paths are relative to the spec file's folder (to the current folder for a Dag compiled in
Python) and must stay inside it: a path, or a link, that leads out of it is refused, and so
is a path that does not exist.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from a_la_mode.errors import SpecError

FILES = "files"


def digest_files(task: str, spec: Mapping[str, Any], base: Path) -> Mapping[str, Any]:
    """``spec`` with its ``files`` list replaced by their digests (a folder's: each file's)."""
    listed = spec.get(FILES)
    if listed is None:
        return spec
    where = f"task {task!r}: spec.files"
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise SpecError(f"{where} is a list of paths, e.g. ['transform.py', 'sql/']")
    root = base.resolve()
    digests: dict[str, Any] = {}
    for entry in listed:
        name = _normal(entry, where)
        path = root / name
        if not os.path.lexists(path):
            raise SpecError(f"{where}: {entry!r} does not exist in the spec's folder ({root})")
        _inside(path, root, where, entry)
        if path.is_dir():
            digests[name + "/"] = _folder(path, root, where)
        else:
            digests[name] = _digest(path)
    return {**spec, FILES: digests}


def _normal(entry: str, where: str) -> str:
    """``entry`` as a relative POSIX path without ``.`` parts; refused if it climbs out."""
    path = PurePosixPath(entry)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in entry:
        raise SpecError(
            f"{where}: {entry!r} must be a path inside the spec's folder, e.g. 'scripts/x.py'"
        )
    return str(path)


def _inside(path: Path, root: Path, where: str, entry: str) -> None:
    if not path.resolve().is_relative_to(root):
        raise SpecError(f"{where}: {entry!r} is a link leading out of the spec's folder")


def _folder(folder: Path, root: Path, where: str) -> dict[str, str]:
    """Every file under ``folder`` (a linked file must lead inside the spec's folder; a
    linked folder is refused), by its path relative to ``folder``."""
    found: dict[str, str] = {}
    for directory, subfolders, names in os.walk(folder, followlinks=False):
        here = Path(directory)
        for sub in subfolders:
            if (here / sub).is_symlink():
                linked = (here / sub).relative_to(root)
                raise SpecError(f"{where}: {str(linked)!r} is a linked folder; list its target")
        for name in names:
            path = here / name
            _inside(path, root, where, str(path.relative_to(root)))
            if path.is_file():
                found[path.relative_to(folder).as_posix()] = _digest(path)
    return dict(sorted(found.items()))


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
