"""Schedules that can be trusted: a broken schedule file stops nothing else, a slot is
run once across services, and a clock that jumps skips nothing silently."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ..conftest import alamode

pytest.importorskip("starlette", reason="pip install -e '.[test]'")

FLOW = """
meta: {{name: {name}, schedule: '{cron}'}}
tasks:
  stamp: {{spec: {{command: 'echo {name} > "$ALAMODE_OUTPUT/f"'}}}}
"""
HOUR = 3600.0


def activate(tmp_path: Path, name: str, cron: str = "@hourly") -> None:
    (tmp_path / f"{name}.yaml").write_text(FLOW.format(name=name, cron=cron))
    done = alamode("activate", f"{name}.yaml", "--store", "store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def clock_for(tmp_path: Path, missed: str = "once"):  # type: ignore[no-untyped-def]
    from a_la_mode.service.clock import Clock
    from a_la_mode.service.runs import RunManager
    from a_la_mode.service.schedules import ScheduleBook
    from a_la_mode.store.directory import LocalStore

    store = LocalStore(tmp_path / "store")
    book = ScheduleBook(store.root)
    manager = RunManager(str(tmp_path / "store"), {}, "local")
    clock = Clock(book, manager, lambda digest: str(store.outputs.plan_path(digest)), missed)
    return clock, book, manager


def test_a_broken_schedule_file_is_reported_and_the_others_run(tmp_path: Path) -> None:
    from tests.service import Service

    activate(tmp_path, "good")
    activate(tmp_path, "bad")
    (tmp_path / "store" / "schedules" / "bad.json").write_text('{"name": "bad", "versions": [')
    clock, book, manager = clock_for(tmp_path)
    first = (book.get("good").current.activated // HOUR + 1) * HOUR
    [started] = clock.tick(first + 5)
    assert started.outcome == "started"
    assert manager.get(started.run).wait(60) == "succeeded"
    listed = alamode("schedules", "--store", "store", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "skipped: schedule file" in listed.stderr and "bad.json cannot be read" in listed.stderr
    assert listed.stdout.startswith("good  active")
    service = Service(tmp_path / "store")
    try:
        status, page = service.get("/schedules")
        assert status == 200 and "bad.json cannot be read" in page
    finally:
        service.stop()


THREE_SERVICES = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from tests.trust.test_schedules import clock_for

    here, slots, me = Path({here!r}), {slots!r}, os.getpid()
    clock, book, manager = clock_for(here)
    deadline = time.monotonic() + 120
    for number, at in enumerate(slots):
        (here / f"ready-{{number}}-{{me}}").touch()
        while not (here / f"go-{{number}}").exists():  # the three are let go together
            assert time.monotonic() < deadline, "never let go"
            time.sleep(0.001)
        for slot in clock.tick(at + 5):
            if slot.outcome == "started":
                print(slot.at, flush=True)
                manager.get(slot.run).wait(60)
    """
)


def test_three_services_on_one_store_run_each_slot_once(tmp_path: Path) -> None:
    activate(tmp_path, "every")
    _, book, _ = clock_for(tmp_path)
    first = (book.get("every").current.activated // HOUR + 1) * HOUR
    slots = [first + n * HOUR for n in range(5)]
    root = str(Path(__file__).parent.parent.parent)
    script = THREE_SERVICES.format(tests=root, here=str(tmp_path), slots=slots)
    services = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        for number in range(len(slots)):  # all three tick each slot at the same moment
            deadline = time.monotonic() + 90
            while len(list(tmp_path.glob(f"ready-{number}-*"))) < len(services):
                assert time.monotonic() < deadline and all(s.poll() is None for s in services)
                time.sleep(0.01)
            (tmp_path / f"go-{number}").touch()
        started = []
        for service in services:
            out, _ = service.communicate(timeout=120)
            assert service.returncode == 0
            started += [float(line) for line in out.split()]
    finally:
        for service in services:
            service.kill()
            service.wait()
    assert sorted(started) == slots  # each slot run once, by one of the three
    assert sorted(s.at for s in book.get("every").slots) == slots


def test_a_clock_that_jumps_forward_and_back_skips_nothing_silently(tmp_path: Path) -> None:
    activate(tmp_path, "jumpy")
    clock, book, manager = clock_for(tmp_path)
    first = (book.get("jumpy").current.activated // HOUR + 1) * HOUR
    [one] = clock.tick(first + 5)
    assert manager.get(one.run).wait(60) == "succeeded"
    jumped = clock.tick(first + 5 * HOUR + 5)  # five hours ahead, then corrected
    ran = [s for s in jumped if s.outcome == "started"]
    assert [s.at for s in ran] == [first + 5 * HOUR]
    assert manager.get(ran[0].run).wait(60) == "succeeded"
    skipped = sorted(s.at for s in jumped if s.outcome == "skipped")
    assert skipped == [first + n * HOUR for n in range(1, 5)]
    assert all("missed" in s.detail for s in jumped if s.outcome == "skipped")
    assert clock.tick(first + 10) == []  # corrected: nothing is due yet
    back = []
    for n in range(1, 5):  # as time really passes
        back.append(clock.tick(first + n * HOUR + 5))
        assert manager.get(back[-1][0].run).wait(60) == "succeeded"
    assert [[s.outcome for s in slots] for slots in back] == [["started"]] * 4
    assert clock.tick(first + 5 * HOUR + 10) == []  # the slot it ran early is not run twice
    deadline = time.monotonic() + 30
    while any(s.outcome == "started" for s in book.get("jumpy").slots):  # recorded at the end
        assert time.monotonic() < deadline
        time.sleep(0.05)
    outcomes = {s.at: s.outcome for s in book.get("jumpy").slots}
    assert outcomes == {first + n * HOUR: "succeeded" for n in range(6)}


def test_activate_and_schedules_say_they_need_serve(tmp_path: Path) -> None:
    (tmp_path / "n.yaml").write_text(FLOW.format(name="n", cron="@daily"))
    done = alamode("activate", "n.yaml", "--store", "store", cwd=tmp_path)
    assert "schedules fire only while 'alamode serve' runs" in done.stderr
    listed = alamode("schedules", "--store", "store", cwd=tmp_path)
    assert "schedules fire only while 'alamode serve' runs" in listed.stderr
    assert "only while 'alamode serve' runs" in alamode("activate", "--help").stdout
