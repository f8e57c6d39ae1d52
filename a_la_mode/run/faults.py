"""Pause points for crash tests: lets a test SIGKILL a real runner at an exact step.

With ``ALAMODE_FAULT_PAUSE=<step>`` set, the runner creates the file named by
``ALAMODE_FAULT_READY`` on reaching ``<step>`` and then sleeps, so the test knows when to
``kill -9`` it. Steps: ``before-rename`` (files fsynced, manifest written, output not yet in
place), ``replaced-aside`` (``run --force``: the old output moved to ``replaced/``, the new
one not yet in place), ``before-record`` (output renamed into place, success not yet
recorded); in a blob store, ``mid-upload`` (an output's first file uploaded, not the rest) and
``before-marker`` (every file uploaded, no marker yet); and ``before-commit`` (a batch
of published outputs made durable, about to be recorded). With ``ALAMODE_FAULT_RESUME``
naming a file too, the runner goes on once that file exists, instead of sleeping for good:
for tests that act on the store at that step (a revocation racing the commit).
The variable is read once, when alamode starts: unset, a pause point costs one comparison.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_PAUSE_AT = os.environ.get("ALAMODE_FAULT_PAUSE")


def pause_point(step: str) -> None:
    """Sleep forever here if a crash test asked to stop at ``step``."""
    if step != _PAUSE_AT:
        return
    ready = os.environ.get("ALAMODE_FAULT_READY")
    if ready:
        Path(ready).write_text(str(os.getpid()))
    resume = os.environ.get("ALAMODE_FAULT_RESUME")
    while not (resume and Path(resume).exists()):
        time.sleep(0.05 if resume else 60)
