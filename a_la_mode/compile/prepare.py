"""What every task's spec goes through before it is hashed, whichever way the pipeline was
described (a Python Dag, a spec file, a pipelayer instance), in this order:

1. its parameters filled in: ``--param`` values, else defaults; one instance per
   combination of the pipeline's matrix, whose values ``--eval-param`` replaces for a
   parameter and a ``--param`` value replaces with one (params.py);
2. its listed files replaced by their digests, relative to the pipeline's folder (files.py);
3. ``rewrite``: a default image, pinning (images.py).

Before all that, a spec key that looks like a misspelled engine key is refused (speckeys.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from a_la_mode.compile.encoder import TaskDef
from a_la_mode.compile.files import FILES, digest_files
from a_la_mode.compile.images import SpecRewrite
from a_la_mode.compile.params import Param, apply
from a_la_mode.compile.speckeys import check_spec_keys


def prepare_tasks(
    tasks: Iterable[TaskDef],
    declared: Mapping[str, Param],
    folder: Path,
    *,
    matrix: Mapping[str, Sequence[str | int]] | None = None,
    params: Mapping[str, str] | None = None,
    each: Mapping[str, list[str]] | None = None,
    rewrite: SpecRewrite | None = None,
    more_files: Sequence[str] = (),
) -> list[TaskDef]:
    """The tasks as they are hashed. ``more_files`` are listed in every task's files too."""
    given = dict(params or {})
    values = {name: [str(v) for v in options] for name, options in (matrix or {}).items()}
    combined = {k: v for k, v in values.items() if k not in given} | dict(each or {})
    prepared = []
    for task in apply(tasks, declared, given, combined):
        check_spec_keys(task.name, task.spec)
        spec = task.spec
        if more_files:
            spec = {**spec, FILES: [*spec.get(FILES, []), *more_files]}
        spec = digest_files(task.name, spec, folder)
        if rewrite is not None:
            spec = rewrite(task.name, spec)
        prepared.append(task if spec is task.spec else task._replace(spec=spec))
    return prepared
