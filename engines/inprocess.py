"""The in-process engine, for debugging: Python function tasks are called in the runner's
own process (a breakpoint in one stops there; what it prints goes to the terminal), and
command tasks run as the local engine runs them.

Its limits are the price of that: a function cannot be killed, so ``timeout`` and Ctrl-C
wait for it to return, and functions called from ``-j`` threads at once share one process.
Use ``-j 1`` with a debugger. What a function raises is written to the task's log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a_la_mode.run.engine import Job, Result
from a_la_mode.run.pyfunction import call_in_process, is_function_task

from .local import LocalEngine


class InProcessEngine:
    """Call function tasks in this process; run commands as local processes."""

    name = "inprocess"
    runs_functions = True  # the runner hands function tasks over as they are

    def __init__(self) -> None:
        self._commands = LocalEngine()

    def check(self) -> None:
        self._commands.check()

    def prepare(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        self._commands.prepare(tasks)

    def run(self, job: Job) -> Result:
        if not is_function_task(job.spec):
            return self._commands.run(job)
        return call_in_process(job)

    def stop_all(self) -> None:
        self._commands.stop_all()  # a function running now returns when it returns
