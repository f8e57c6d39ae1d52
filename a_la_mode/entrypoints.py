"""Installed entry points of one group, read straight from the distributions' metadata.

What ``importlib.metadata.entry_points(group=...)`` returns, for the installed layouts pip
makes (``*.dist-info`` and ``*.egg-info`` directories on ``sys.path``), at a fraction of the
cost: importing ``importlib.metadata`` and building its objects for every distribution took
17 ms of every ``alamode run`` (docs/benchmarks.md). As there, a distribution found twice
counts once, the first on ``sys.path`` winning.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any, NamedTuple

_METADATA_DIRS = (".dist-info", ".egg-info")
_SEPARATORS = re.compile(r"[-_.]+")


class EntryPoint(NamedTuple):
    """``name = value`` in ``[group]`` of a distribution's ``entry_points.txt``."""

    name: str
    value: str  # as written: "module:attribute", perhaps with " [extras]"
    group: str

    def load(self) -> Any:
        """Import the module and return the attribute the value names."""
        reference = self.value.split("[", 1)[0].strip()
        module_name, _, attribute = reference.partition(":")
        found: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            found = getattr(found, part)
        return found


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point in ``group``, in ``sys.path`` order."""
    found: list[EntryPoint] = []
    for metadata_dir in _distributions():
        found.extend(_read_group(metadata_dir, group))
    return found


def entry_points_by_name(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name; of a name declared twice, the first wins."""
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group):
        found.setdefault(entry.name, entry)
    return found


def _distributions() -> list[str]:
    """The metadata directory of each installed distribution, first on sys.path winning."""
    seen: set[str] = set()
    found: list[str] = []
    for entry in sys.path:
        directory = entry or "."
        try:
            names = os.listdir(directory)
        except OSError:  # a zip file, or a path that does not exist
            continue
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext not in _METADATA_DIRS:
                continue
            distribution = _SEPARATORS.sub("_", stem.partition("-")[0]).lower()
            if distribution not in seen:
                seen.add(distribution)
                found.append(os.path.join(directory, name))
    return found


def _read_group(metadata_dir: str, group: str) -> list[EntryPoint]:
    """The entry points of ``group`` in one distribution's ``entry_points.txt``."""
    try:
        with open(os.path.join(metadata_dir, "entry_points.txt"), encoding="utf-8") as file:
            text = file.read()
    except OSError:  # none, or an .egg-info that is a file
        return []
    found: list[EntryPoint] = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            name, _, value = line.partition("=")
            found.append(EntryPoint(name.strip(), value.strip(), group))
    return found
