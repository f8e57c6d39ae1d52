"""Inputs a run can no longer trust while it runs: those revoked since it began, and those
a task changed in place (run/inputguard.py). The runner asks before it counts an output,
on its main thread (the only one that touches the store's database)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError
from a_la_mode.run.inputguard import InputChanged
from a_la_mode.store.contract import Store
from a_la_mode.store.revocation import revoke


class Untrusted:
    """What the run watches: revocations made since it began."""

    def __init__(self, plan: PlanBase, store: Store) -> None:
        self.plan, self.store = plan, store
        self.before = store.outputs.revoked_outputs()  # revoked during the run: the rest
        self.now: dict[str, dict[str, Any]] = {}

    def revoked_input(self, name: str) -> str:
        """Why ``name``'s output must not count: an input revoked during the run ("" if
        none). Asked each time a task with inputs ends: one query of the store."""
        new = self.store.outputs.revoked_outputs() - self.before
        if new - set(self.now):
            self.now = self.store.outputs.revocations(new)
        for dep, output in self.plan.inputs(name).items():
            record = self.now.get(output)
            if record is not None:
                return f"its input {dep} was revoked during the run: {record['reason']}"
        return ""

    def changed_input(self, name: str, changed: InputChanged) -> str:
        """A task changed an input in place: that copy can never be trusted again. A cache
        (a blob store's) drops its copy, the bucket's is intact; a directory store's output
        is revoked, with all built on it, and kept in revoked/ for inspection (the runner
        records what waits to be recorded first: the input may be among it)."""
        output = self.plan.inputs(name)[changed.dependency]
        if self.store.outputs.fetches_inputs:
            folder = Path(self.store.outputs.output_folder(output))
            if folder.exists():
                self.store.outputs.discard_output(folder)
            return "this machine's copy of it was dropped; the store's is intact"
        reason = f"changed in place by task {name}"
        with contextlib.suppress(AlamodeError):  # revoked already (two tasks changed it)
            revoke(self.store, output, reason)
        return f"it is revoked ({reason}) and will run again"
