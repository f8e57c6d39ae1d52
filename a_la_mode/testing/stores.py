"""The store contract (a_la_mode/store/contract.py, version 1) as tests: see the package's docstring
for how to use them.

Each test drives a store through the success protocol as the runner does -- a run, a
claim, a staging directory, ``publish``, ``make_durable``, ``record_successes`` -- and
checks what a user of the store would see: what counts as done, what another machine can
fetch, who may produce an output, and what is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from a_la_mode.compile.encoder import TaskDef, compile_plan
from a_la_mode.compile.plan import Plan
from a_la_mode.errors import StoreError
from a_la_mode.store.contract import Store
from a_la_mode.store.manifest import Manifest, OutputRefused
from a_la_mode.store.records import Lease, Success


def _plan() -> Plan:
    return compile_plan(
        {},
        [
            TaskDef("a", {"command": "make a"}),
            TaskDef("b", {"command": "make b"}, ["a"]),
        ],
    )


def stage(store: Store, plan: Plan, task: str, files: dict[str, str]) -> tuple[int, Lease, Path]:
    """Begin a run, claim ``task``'s output, and write ``files`` (relative path -> text) into
    a staging directory, as a command would: (run, lease, staging directory)."""
    run = store.begin_run(plan, "contract")
    lease = store.leases.claim(plan.output(task), run, task)
    assert lease.state == "ours", lease
    staging = Path(store.outputs.staging_path(plan.output(task)))
    staging.mkdir()
    for name, text in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(text)
    return run, lease, staging


def produce(store: Store, plan: Plan, task: str, files: dict[str, str]) -> Manifest:
    """Make ``task``'s output with ``files`` and record it, by the success protocol."""
    output = plan.output(task)
    run, lease, staging = stage(store, plan, task, files)
    manifest = store.outputs.publish(output, staging)
    success = Success(output, task, plan.digest, run, 0.1, "contract", manifest)
    store.outputs.make_durable([success])
    assert lease.attempt is not None
    store.outputs.record_successes([(lease.attempt, 0.1, success)])
    store.end_run(run, "succeeded")
    return manifest


class StoreContract:
    """Subclass it and define ``open_store``: every ``test_`` method runs on your store."""

    def open_store(self, machine: str, tmp_path: Path) -> Store:
        """A store instance as ``machine`` sees it (each machine its own local state)."""
        raise NotImplementedError("define open_store(machine, tmp_path) in your subclass")

    @pytest.fixture
    def stores(self, tmp_path: Path) -> Any:
        opened: list[Store] = []

        def open_as(machine: str) -> Store:
            store = self.open_store(machine, tmp_path)
            assert isinstance(store, Store), f"{type(store).__name__} lacks part of the contract"
            opened.append(store)
            return store

        yield open_as
        for store in opened:
            store.close()

    def test_a_recorded_output_is_done_and_readable(self, stores: Any) -> None:
        plan, store = _plan(), stores("one")
        assert store.outputs.successes([plan.output("a")]) == set()
        manifest = produce(store, plan, "a", {"f.txt": "hello\n", "d/g.txt": "deep\n"})
        assert store.outputs.successes([plan.output("a"), plan.output("b")]) == {plan.output("a")}
        folder = store.outputs.fetch(plan.output("a"))
        assert (folder / "f.txt").read_text() == "hello\n"
        assert (folder / "d" / "g.txt").read_text() == "deep\n"
        assert sorted(manifest.files) == ["d/g.txt", "f.txt"]
        assert store.outputs.check_output(plan.output("a"), deep=True) is None
        row = store.outputs.success_row(plan.output("a"))
        assert row is not None and row["task"] == "a" and row["plan"] == plan.digest

    def test_another_machine_sees_and_fetches_it(self, stores: Any) -> None:
        plan = _plan()
        produce(stores("one"), plan, "a", {"f.txt": "hello\n"})
        other = stores("two")
        assert other.outputs.successes([plan.output("a")]) == {plan.output("a")}
        assert (other.outputs.fetch(plan.output("a")) / "f.txt").read_text() == "hello\n"

    def test_a_published_output_without_a_record_is_not_done(self, stores: Any) -> None:
        plan, store = _plan(), stores("one")
        output = plan.output("a")
        _, _, staging = stage(store, plan, "a", {"f.txt": "half\n"})
        store.outputs.publish(output, staging)  # the runner died before recording it
        assert stores("two").outputs.successes([output]) == set()

    def test_one_producer_at_a_time(self, stores: Any) -> None:
        plan = _plan()
        one, two = stores("one"), stores("two")
        output = plan.output("a")
        if two.root == one.root:
            pytest.skip(
                "one process is one runner of a directory store: leases between two "
                "processes are held by tests/test_directory_store.py"
            )
        first = one.leases.claim(output, one.begin_run(plan, "contract"), "a")
        assert first.state == "ours"
        second = two.leases.lease(output, two.begin_run(plan, "contract"))
        assert second.state == "held", second
        one.leases.release(output)
        assert two.leases.lease(output, two.begin_run(plan, "contract")).state == "ours"

    def test_forget_and_revoke_make_it_not_done(self, stores: Any) -> None:
        plan, store = _plan(), stores("one")
        produce(store, plan, "a", {"f.txt": "x\n"})
        store.outputs.forget(plan.output("a"))
        assert store.outputs.successes([plan.output("a")]) == set()
        produce(store, plan, "b", {"g.txt": "y\n"})
        record = store.outputs.revoke(plan.output("b"), "bad input", "tester@host")
        assert record is not None and record["reason"] == "bad input" and record["task"] == "b"
        assert store.outputs.successes([plan.output("b")]) == set()
        assert (
            store.outputs.revocations([plan.output("b")])[plan.output("b")]["who"] == "tester@host"
        )
        assert stores("two").outputs.successes([plan.output("b")]) == set()

    def test_links_inside_are_kept_and_leaving_ones_refused(self, stores: Any) -> None:
        plan, store = _plan(), stores("one")
        output = plan.output("a")
        _, _, staging = stage(store, plan, "a", {"f.txt": "x\n"})
        os.symlink("/etc/passwd", staging / "passwd")
        with pytest.raises(OutputRefused, match="leaving the output: passwd -> /etc/passwd"):
            store.outputs.publish(output, staging)
        (staging / "passwd").unlink()
        store.leases.release(output)
        produce(store, _plan(), "b", {"f.txt": "x\n"})
        manifest = store.outputs.manifest(plan.output("b"))
        assert manifest is not None and manifest.links == {}
        linked = Manifest.from_dict({"f.txt": [2, "ab"], "l": {"link": "f.txt"}})
        assert linked.links == {"l": "f.txt"}

    def test_plans_are_kept_by_digest(self, stores: Any) -> None:
        plan, store = _plan(), stores("one")
        store.outputs.save_plan(plan)
        assert plan.digest in store.outputs.all_plans()
        assert store.outputs.load_plan(plan.digest).digest == plan.digest

    def test_an_output_id_that_is_not_one_is_refused(self, stores: Any) -> None:
        store = stores("one")
        with pytest.raises(StoreError):
            store.outputs.staging_path("../../etc")
