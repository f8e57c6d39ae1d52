"""The compiled helpers. ``compiled`` (``_native.c``): the local engine's and the directory
store's per-task work without the interpreter lock, about 0.15× of the process-spawn floor
off a cold run of short tasks (docs/benchmarks.md, eighth round). ``plan_reader``
(``_planread.c``): reading a plan file's bencode (ninth round). Each is None where it was not
built (no C compiler or no OpenSSL headers at install) or with ``ALAMODE_NATIVE=0``; alamode
then does the same steps in Python."""

from __future__ import annotations

import os
from types import ModuleType

compiled: ModuleType | None
plan_reader: ModuleType | None
try:
    from . import _native as compiled
except ImportError:  # not built here
    compiled = None
try:
    from . import _planread as plan_reader
except ImportError:
    plan_reader = None
NOT_BUILT = "not built (reinstall with a C compiler and OpenSSL's headers)"
why_not = "" if compiled is not None else NOT_BUILT
if os.environ.get("ALAMODE_NATIVE", "1") == "0":
    compiled, plan_reader, why_not = None, None, "off (ALAMODE_NATIVE=0)"


def describe() -> str:
    """Which steps run, for ``alamode engines``."""
    return "compiled steps" if compiled is not None else f"Python steps; compiled ones {why_not}"
