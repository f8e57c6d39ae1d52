"""Naming what a command reads: a plan file, a spec file, or ``file.py:name``.

Kept apart from specfile.py (YAML, pydantic models) so that commands reading a plan do not
load what only compiling a spec file needs.
"""

from __future__ import annotations

import re
from pathlib import Path

PYTHON_SUFFIXES = (".py",)
DECLARATIVE_SUFFIXES = (".json", ".yaml", ".yml", ".toml")
SPEC_SUFFIXES = PYTHON_SUFFIXES + DECLARATIVE_SUFFIXES

_PICKED_DAG = re.compile(r"^(?P<path>.+\.py):(?P<attr>[A-Za-z_][A-Za-z0-9_]*)$")


def split_source(source: str) -> tuple[Path, str | None]:
    """``"file.py:name"`` -> (file.py, "name"); any other source -> (path, None)."""
    picked = _PICKED_DAG.match(source)
    if picked:
        return Path(picked["path"]), picked["attr"]
    return Path(source), None


INSTANCE_VALUES = "values.json"  # what makes a folder an instance of a pipelayer directory
TEMPLATE = "pipeline_definition.yaml"  # what makes a folder a pipelayer directory


def is_instance(path: Path) -> bool:
    """Whether ``path`` is one pipeline instance of a pipelayer-style directory."""
    return (path / INSTANCE_VALUES).is_file()


def is_collection(path: Path) -> bool:
    """Whether ``path`` is a pipelayer directory (a template and instance folders)."""
    return path.is_dir() and (path / TEMPLATE).is_file()


def is_spec_path(source: str) -> bool:
    """True when ``source`` (optionally ``file.py:name``) names a spec file by its suffix, or
    an instance folder of a pipelayer directory."""
    path = split_source(source)[0]
    return path.suffix.lower() in SPEC_SUFFIXES or is_instance(path)
