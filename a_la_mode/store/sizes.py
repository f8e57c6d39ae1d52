"""Sizes as people read them, for messages: ``512 bytes``, ``1.2 MB``."""

from __future__ import annotations


def human_size(count: int | float) -> str:
    """``count`` bytes in decimal units, to one decimal place past bytes."""
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
