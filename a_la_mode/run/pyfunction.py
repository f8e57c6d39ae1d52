"""Running a Python function task (compile/functions.py says what its spec holds).

By default it runs in a fresh Python process, as a command: ``python -m
a_la_mode.run.pyfunction``, with the function's spec in ``$ALAMODE_FUNCTION`` and its output
and inputs in the usual ``ALAMODE_*`` variables. Engines that run Python themselves (the
in-process engine, Dask workers) call ``call`` instead. Either way, the code of every hashed
module is checked against its digest before the function is called: code edited since the
plan was compiled fails the task, so a success is never recorded for code that was not hashed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from a_la_mode.compile.functions import ARGS, CODE, FUNCTION, code_digests, resolve
from a_la_mode.errors import AlamodeError, SpecError
from a_la_mode.run.engine import EngineError, Job, LogFile, Result

VARIABLE = "ALAMODE_FUNCTION"  # the function's spec, as JSON, for the fresh process
CODE_CHANGED_STATUS = 3  # the exit status when the code no longer matches the plan


class CodeChanged(AlamodeError):
    """A hashed module's source differs from the digest in the plan."""


def is_function_task(spec: Mapping[str, Any]) -> bool:
    return FUNCTION in spec


def runs_something(spec: Mapping[str, Any]) -> bool:
    """A command or a function: anything but a pure join point."""
    return bool(spec.get("command")) or FUNCTION in spec


def check_code(spec: Mapping[str, Any]) -> None:
    """Every hashed module's source, as it is now, against its digest in the plan."""
    for module, digest in spec.get(CODE, {}).items():
        try:
            now = code_digests([module])[module]
        except SpecError as err:
            raise CodeChanged(f"{err}; it was hashed when the plan was compiled") from None
        if now != digest:
            raise CodeChanged(
                f"code of module {module} changed since the plan was compiled; "
                "encode the plan again to run the new code"
            )


def call(spec: Mapping[str, Any], output: str, inputs: Mapping[str, str]) -> None:
    """Check the code, then call the function in this process."""
    check_code(spec)
    module, qualname = str(spec[FUNCTION]).split(":", 1)

    func = resolve(module, qualname)
    func(Path(output), {name: Path(path) for name, path in inputs.items()}, **spec.get(ARGS, {}))


def call_in_process(job: Job) -> Result:
    """Call ``job``'s function in this process (the in-process engine, a Dask worker). What
    it raises is its failure, with the traceback in its log."""
    started = time.monotonic()
    try:
        call(job.spec, job.output_dir, job.inputs)
    except CodeChanged as err:
        text, why = f"alamode: {err}\n", str(err)
    except Exception as err:
        text, why = traceback.format_exc(), f"raised {type(err).__name__}: {err}"
    else:
        return Result(0, time.monotonic() - started)
    with LogFile(job.log_path) as log:
        log.write(text.encode())
    return Result(None, time.monotonic() - started, detail=why)


def refuse_function_tasks(engine: str, tasks: Mapping[str, Mapping[str, Any]], why: str) -> None:
    """For an engine that runs commands only: one line naming the first function task."""
    for task, spec in tasks.items():
        if is_function_task(spec):
            raise EngineError(
                f"task {task!r} is a Python function task, and the {engine} engine {why}: "
                "run it with --engine local, inprocess or dask"
            )


def as_command(job: Job, search: list[str]) -> Job:
    """``job`` as a command that calls its function in a fresh Python process (this one's
    interpreter); ``search`` are folders put first on its module search path."""
    spec = {key: job.spec[key] for key in (FUNCTION, CODE, ARGS) if key in job.spec}
    path = os.pathsep.join([*search, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**job.env, VARIABLE: json.dumps(spec), "PYTHONPATH": path}
    return job._replace(command=[sys.executable, "-m", __name__], env=env)


def main() -> int:
    """The fresh process: call the function named in ``$ALAMODE_FUNCTION``."""
    spec = json.loads(os.environ[VARIABLE])
    inputs = json.loads(os.environ.get("ALAMODE_INPUTS", "{}"))
    try:
        call(spec, os.environ["ALAMODE_OUTPUT"], inputs)
    except CodeChanged as err:
        print(f"alamode: {err}", file=sys.stderr)
        return CODE_CHANGED_STATUS
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
