"""Group commit: published outputs are recorded in batches. A batch is made durable (a
syncfs, milliseconds) on a thread of its own, then recorded in one transaction on the
runner's main thread, which alone touches the store's database."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor

from a_la_mode.run.faults import pause_point
from a_la_mode.store.contract import Store
from a_la_mode.store.records import Refusal, Success

GROUP_COMMIT_SECONDS = 0.2  # how long a published output may wait to be recorded
GROUP_COMMIT_SIZE = 256

Finished = tuple[int, float, Success]  # attempt row, seconds, the success


class GroupCommit:
    """``add`` what was published; ``flush`` when the batch is due (or ``force``)."""

    def __init__(
        self,
        store: Store,
        wake: Callable[[], None],
        refused: Callable[[list[Refusal]], None],
    ) -> None:
        self.store = store
        self.wake = wake  # tells the main thread a batch is durable, to record it
        self.refused = refused  # told what the store would not record (a revoked input)
        self.pending: list[Finished] = []  # published, not yet recorded
        self.oldest = 0.0
        self.flushing: Future[list[Finished]] | None = None
        self.flusher = ThreadPoolExecutor(1, thread_name_prefix="alamode-flush")

    def add(self, finished: Finished) -> None:
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append(finished)

    def flush(self, force: bool) -> None:
        """Record what is durable; start making the next batch durable when it is due (the
        oldest has waited GROUP_COMMIT_SECONDS, or the batch is full). One batch is made
        durable at a time; ``force`` does it all now."""
        if self.flushing is not None and (force or self.flushing.done()):
            batch = self.flushing.result()  # raises what making it durable raised
            self.flushing = None
            self._record(batch)
        if self.flushing is not None or not self.pending:
            return
        if force:
            self.store.outputs.make_durable(success for _, _, success in self.pending)
            batch, self.pending = self.pending, []
            self._record(batch)
            return
        due = time.monotonic() - self.oldest >= GROUP_COMMIT_SECONDS
        if due or len(self.pending) >= GROUP_COMMIT_SIZE:
            batch, self.pending = self.pending, []
            self.flushing = self.flusher.submit(self._make_durable, batch)

    def _record(self, batch: list[Finished]) -> None:
        pause_point("before-commit")
        refused = self.store.outputs.record_successes(batch)
        if refused:
            self.refused(refused)

    def _make_durable(self, batch: list[Finished]) -> list[Finished]:
        """On the flusher's thread."""
        try:
            self.store.outputs.make_durable(success for _, _, success in batch)
        finally:
            self.wake()
        return batch

    def settle(self) -> None:
        """Wait for the batch being made durable, if any (Ctrl-C: then ``flush(True)``)."""
        if self.flushing is not None:
            futures.wait([self.flushing])

    def close(self) -> None:
        self.flusher.shutdown(wait=False)  # a batch being made durable still completes
