"""The Python function tasks of the cluster example: importable by path (``tasks``) on every
machine that runs them, and hashed into the plan (editing this file reruns them)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def count_words(output: Path, inputs: dict[str, Path], top: int = 5) -> None:
    """The ``top`` most common words of every text file of the ``fetch`` task."""
    counts: Counter[str] = Counter()
    for text in sorted(inputs["fetch"].glob("*.txt")):
        counts.update(text.read_text().lower().split())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    (output / "counts.json").write_text(json.dumps(dict(ranked), indent=1) + "\n")
