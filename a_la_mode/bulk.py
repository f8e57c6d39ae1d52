"""Bulk work on millions of small objects without the cyclic garbage collector's pauses.

Compiling or loading a plan allocates millions of dicts that all stay alive; every GC pass
would scan them again, making the work superlinear. They form trees (no cycles), so reference
counting frees them and pausing the collector loses nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic GC inside the block; restore its previous state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
