"""What happens around each command, on a dispatcher's thread (never the store's database):
before it, the staging directory, the inputs brought here if the store keeps them elsewhere,
and the folder of its listed files; after it, the output published, or the staging dropped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError
from a_la_mode.run.engine import Job, Result
from a_la_mode.run.inputguard import Baselines, InputChanged, Snapshot, check
from a_la_mode.run.workdir import make_workdir, remove_workdir
from a_la_mode.store.contract import Store
from a_la_mode.store.manifest import Manifest


class AttemptSteps:
    """The runner's side of each job, for ``dispatch.Steps``."""

    def __init__(self, store: Store, plan: PlanBase, files_root: Path | None) -> None:
        self.store, self.plan, self.files_root = store, plan, files_root
        self.noted: dict[str, dict[str, Snapshot]] = {}  # staging dir -> its inputs' notes
        self.baselines = Baselines()  # what each input held when the run first read it

    def before(self, job: Job) -> None:
        """The staging directory, inputs fetched here if need be, and the checked copy of
        the listed files. The engine makes the log if need be."""
        os.mkdir(job.output_dir)
        if self.store.outputs.fetches_inputs:
            for name, output_id in self.plan.inputs(job.task).items():
                try:  # a blob store downloads them into its cache
                    self.store.outputs.fetch(output_id)
                except AlamodeError as err:
                    raise InputUnavailable(f"could not fetch its input {name}: {err}") from None
        if job.workdir is not None:
            make_workdir(job.spec, self.files_root, job.workdir)
        if job.inputs:
            self.noted[job.output_dir] = self.baselines.note(job.inputs)

    def after(self, job: Job, result: Result) -> tuple[Result, Manifest | None]:
        """Publish what a command that succeeded wrote; drop the rest. A command that
        changed an input (root ignores file modes) is never published: InputChanged."""
        if job.workdir is not None:
            remove_workdir(job.workdir)
        noted = self.noted.pop(job.output_dir, None)
        if noted is not None:
            try:
                check(job.task, job.inputs, noted)
            except InputChanged:
                shutil.rmtree(job.output_dir, ignore_errors=True)
                raise
        if not result.ok:
            shutil.rmtree(job.output_dir, ignore_errors=True)
            return result, None
        return result, self.store.outputs.publish(job.output_id, job.output_dir)


def discard(job: Job) -> None:
    """Remove what an attempt that will not be published had on disk."""
    if job.output_dir:
        shutil.rmtree(job.output_dir, ignore_errors=True)
    if job.workdir is not None:
        remove_workdir(job.workdir)


class InputUnavailable(AlamodeError):
    """An input could not be brought here (the store failed to hand it over)."""


class StoreSteps:
    """The runner's side of each job at placement "store": the worker fetches, runs and
    publishes; here only the listed files are checked (and shipped by the engine), and the
    output the worker published is taken from the result."""

    def __init__(self, plan: PlanBase, files_root: Path | None) -> None:
        self.plan, self.files_root = plan, files_root

    def before(self, job: Job) -> None:
        if job.workdir is not None:
            make_workdir(job.spec, self.files_root, job.workdir)

    def after(self, job: Job, result: Result) -> tuple[Result, Manifest | None]:
        if job.workdir is not None:
            remove_workdir(job.workdir)
        if not result.ok or result.manifest is None:
            return result, None
        return result, Manifest.from_dict(result.manifest)
