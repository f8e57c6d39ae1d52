"""The folder a task that lists ``files`` runs in: a read-only copy of exactly the bytes
that were hashed into its spec (``compile/files.py``), made just before the command starts.

A listed file that changed since the plan was compiled fails the task, naming the file:
the output would otherwise be recorded under an ID that does not describe what ran.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from a_la_mode.compile.files import FILES
from a_la_mode.errors import AlamodeError
from a_la_mode.store.manifest import read_only, remove_tree


class FilesChanged(AlamodeError):
    """A listed file is missing, or no longer has the bytes its task was compiled with."""


def workdir_path(output_dir: str) -> str:
    """Where the attempt whose staging directory is ``output_dir`` gets its files (a
    sibling, named so that the store's clean-up knows whose it is)."""
    return f"{output_dir}-files"


def make_workdir(spec: Mapping[str, Any], root: Path | None, target: str) -> str | None:
    """Copy the spec's listed files from ``root`` (the spec's folder) to ``target``, checking
    each against its digest, and make the copy read-only; None for a task without files."""
    listed = spec.get(FILES)
    if not isinstance(listed, dict) or not listed:
        return None
    if root is None:
        raise FilesChanged(
            "it lists files, and this run has no folder to find them in; run the spec file, "
            "or the plan file from the spec's folder"
        )
    wanted: dict[str, str] = {}
    for name, digest in listed.items():
        if isinstance(digest, dict):  # a folder: each of its files
            wanted.update({f"{name}{inner}": str(d) for inner, d in digest.items()})
        else:
            wanted[name] = str(digest)
    try:
        for name, digest in wanted.items():
            _copy_checked(root / name, Path(target, name), name, digest)
    except BaseException:
        remove_tree(Path(target))
        raise
    for folder, dirs, _ in os.walk(target, topdown=False):  # the files were made read-only
        for entry in dirs:
            read_only(os.path.join(folder, entry))
    read_only(target)
    return target


def _copy_checked(source: Path, copy: Path, name: str, digest: str) -> None:
    copy.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    try:
        with source.open("rb") as reader, copy.open("xb") as writer:
            while chunk := reader.read(1 << 20):
                hasher.update(chunk)
                writer.write(chunk)
    except FileNotFoundError:
        raise FilesChanged(f"its file {name} is gone since the plan was compiled") from None
    os.chmod(copy, source.stat().st_mode & 0o555)  # an executable stays one (read-only)
    if hasher.hexdigest() != digest:
        raise FilesChanged(
            f"its file {name} changed since the plan was compiled; compile it again "
            "(or run the spec file)"
        )


def remove_workdir(path: str) -> None:
    remove_tree(Path(path))
