"""``alamode serve`` over HTTP, as a real process: the pages and their JSON twins, runs from
the service, and the guards (Host, CSRF, token, bad input)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import alamode
from tests.service import Service

pytest.importorskip("starlette", reason="pip install -e '.[test]'")

FLOW = """
meta: {name: nightly}
tasks:
  fetch: {spec: {command: 'seq 1 5 > "$ALAMODE_OUTPUT/n"; echo "<script>window.__pwned=1</script>"'}}
  double: {deps: [fetch], spec: {command: 'sed "s/$/0/" "$ALAMODE_INPUT_FETCH/n" > "$ALAMODE_OUTPUT/n"'}}
  total: {deps: [double], spec: {command: 'wc -l < "$ALAMODE_INPUT_DOUBLE/n" > "$ALAMODE_OUTPUT/count"'}}
"""  # noqa: E501


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    """A store where the flow ran once, served; and the plan's digest."""
    (tmp_path / "flow.yaml").write_text(FLOW)
    done = alamode("run", "flow.yaml", "--store", "store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    digest = alamode("show", "flow.yaml", "--json", cwd=tmp_path)
    plan = json.loads(digest.stdout)["digest"]
    service = Service(tmp_path / "store")
    yield service, plan
    service.stop()


def test_the_pages_and_their_json_twins(served: tuple[Service, str], tmp_path: Path) -> None:
    service, plan = served
    cwd = tmp_path
    plans = service.api("/plans")["plans"]
    assert [(p["digest"], p["name"], p["last_run"]["status"]) for p in plans] == [
        (plan, "nightly", "succeeded")
    ]
    status, page = service.get("/")
    assert status == 200 and plan[:12] in page and "nightly" in page
    detail = service.api(f"/plans/{plan}")
    assert [t["task"] for t in detail["tasks"]] == ["fetch", "double", "total"]
    assert {t["label"] for t in detail["tasks"]} == {"done"}
    status = json.loads(
        alamode("status", "flow.yaml", "--store", "store", "--json", cwd=cwd).stdout
    )
    assert [{k: t[k] for k in ("task", "output", "label", "reason")} for t in detail["tasks"]] == [
        {k: row[k] for k in ("task", "output", "label", "reason")} for row in status
    ]  # the same model as the command line's
    assert detail["levels"] == [["fetch"], ["double"], ["total"]]
    assert len(detail["runs_30_days"]) == 1 and detail["last_runs"][0]["attempts"]
    _, html = service.get(f"/plans/{plan}")
    assert html.count('<tr data-task="') == 3 and '<svg id="graph"' in html
    task = service.api(f"/plans/{plan}/tasks/double")
    assert task["upstream"] == ["fetch"] and task["downstream"] == ["total"]
    assert task["provenance"]["task"] == "double" and task["spec"]["command"]
    fetch = service.api(f"/plans/{plan}/tasks/fetch")
    assert fetch["logs"][0]["text"] == "<script>window.__pwned=1</script>\n"


def test_what_a_task_printed_is_shown_as_text(served: tuple[Service, str]) -> None:
    service, plan = served
    _, html = service.get(f"/plans/{plan}/tasks/fetch")
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "<script>window.__pwned" not in html


def test_a_run_from_the_service_and_two_clicks_run_once(tmp_path: Path) -> None:
    """Nothing has run yet; two clicks while the run goes: one run, each task once."""
    gate = tmp_path / "go"
    flow = FLOW.replace("seq 1 5 >", f'while [ ! -f "{gate}" ]; do sleep 0.05; done; seq 1 5 >')
    (tmp_path / "flow.yaml").write_text(flow)
    assert alamode("push", "flow.yaml", "--store", "store", cwd=tmp_path).returncode == 0
    plan = json.loads(alamode("show", "flow.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    service = Service(tmp_path / "store")
    try:
        token = service.csrf()
        json_accept = {"Accept": "application/json"}
        first = service.request(f"/plans/{plan}/run", {"csrf": token}, json_accept)
        second = service.request(f"/plans/{plan}/run", {"csrf": token}, json_accept)
        assert first[0] == second[0] == 202
        one, two = json.loads(first[1]), json.loads(second[1])
        assert two["id"] == one["id"]  # the run still going is handed back, not a new one
        gate.touch()
        ended = service.wait_for_run(one["id"])
        assert ended["status"] == "succeeded"
        starts = [e["task"] for e in ended["log"] if e["event"] == "start"]
        assert sorted(starts) == ["double", "fetch", "total"]  # each task once
        redirect = service.request(f"/plans/{plan}/run", {"csrf": token})
        assert redirect[0] == 303 and re.fullmatch(r"/runs/[0-9a-f]{12}", redirect[2]["location"])
        again = service.wait_for_run(redirect[2]["location"].rsplit("/", 1)[1])
        assert again["counts"].get("start", 0) == 0  # all done: nothing runs twice
    finally:
        service.stop()


def test_bad_requests_are_one_line_4xx(served: tuple[Service, str]) -> None:
    service, plan = served
    token = service.csrf()
    cases = [
        (service.get("/plans/not-a-digest"), 400, "is not a plan digest"),
        (service.get("/plans/" + "a" * 64), 404, "no plan aaaaaaaaaaaa"),
        (service.get(f"/plans/{plan}/tasks/nope"), 404, "no task 'nope'"),
        (service.get("/runs/123"), 400, "is not a run ID"),
        (service.get("/runs/" + "b" * 12), 404, "no run bbbbbbbbbbbb"),
        (service.get("/nowhere"), 404, "no page at /nowhere"),
        (service.get(f"/plans/{plan}/run"), 405, "not allowed"),
        (service.request(f"/plans/{plan}/run", {"csrf": token, "task": "nope"})[:2], 400,
         "no task 'nope' in plan"),
    ]  # fmt: skip
    for (status, text), expected, said in cases:
        assert status == expected, text
        assert said in text and len(text.strip().splitlines()) == 1 and "Traceback" not in text
    status, text = service.get("/api/plans/" + "a" * 64)
    assert status == 404 and json.loads(text) == {"error": f"no plan {'a' * 12}… in this store"}


def test_state_changes_need_the_csrf_token_and_the_service_s_own_host(
    served: tuple[Service, str],
) -> None:
    service, plan = served
    token = service.csrf()
    assert service.request(f"/plans/{plan}/run", {"task": "fetch"})[0] == 403
    assert service.request(f"/plans/{plan}/run", {"csrf": "forged", "task": "fetch"})[0] == 403
    cross = service.request(
        f"/plans/{plan}/run", {"csrf": token}, {"Origin": "http://evil.example"}
    )
    assert cross[0] == 403
    assert service.get("/", Host="evil.example")[0] == 421  # DNS rebinding
    assert service.get("/", Host=f"localhost:{service.port}")[0] == 200
    assert service.api("/plans")["plans"][0]["last_run"]["run"] == 1  # nothing ran


def test_a_token_is_required_when_given_and_kept_in_a_cookie(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("a-secret-of-some-length\n")
    service = Service(tmp_path / "store", "--token-file", str(tmp_path / "token"))
    try:
        assert service.get("/")[0] == 401
        status, _, headers = service.request("/?token=a-secret-of-some-length")
        assert status == 303 and "alamode_token=a-secret-of-some-length" in headers["set-cookie"]
        assert service.get("/", Cookie="alamode_token=a-secret-of-some-length")[0] == 200
        assert service.get("/", Authorization="Bearer a-secret-of-some-length")[0] == 200
        assert service.get("/", Authorization="Bearer wrong-secret-of-length")[0] == 401
    finally:
        service.stop()


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    done = alamode("serve", "--store", "s", "--host", "192.0.2.1", cwd=tmp_path)
    assert done.returncode == 2 and "--token-file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_review_shows_two_plans_as_diff_does(served: tuple[Service, str], tmp_path: Path) -> None:
    service, old = served
    (tmp_path / "flow2.yaml").write_text(FLOW.replace("seq 1 5", "seq 1 6"))
    pushed = alamode("push", "flow2.yaml", "--store", "store", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    new = json.loads(alamode("show", "flow2.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    review = service.api(f"/review?old={old}&new={new}")
    diff = json.loads(
        alamode(
            "diff", "flow.yaml", "flow2.yaml", "--json", "--store", "store", cwd=tmp_path
        ).stdout
    )
    assert review["counts"] == diff["counts"]
    assert review["store"]["to_compute"] == ["fetch", "double", "total"]
    _, html = service.get(f"/review?old={old}&new={new}")
    assert "changed itself: command: seq 1 [-5-] {+6+}" in html  # as diff words it
    assert "&lt;script&gt;" in html and "<script>window" not in html


def test_schedules_activate_replace_and_keep_versions(tmp_path: Path) -> None:
    daily = FLOW.replace("meta: {name: nightly}", "meta: {name: nightly, schedule: '@daily'}")
    (tmp_path / "flow.yaml").write_text(daily)
    first = alamode("activate", "flow.yaml", "--store", "store", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    shown = json.loads(first.stdout)
    assert shown["name"] == "nightly" and shown["versions"] == 1
    assert shown["next_run"].endswith("00:00:00 UTC")
    (tmp_path / "flow.yaml").write_text(
        FLOW.replace("meta: {name: nightly}", "meta: {name: nightly, schedule: '0 6 * * *'}")
    )
    again = alamode("activate", "flow.yaml", "--store", "store", "--json", cwd=tmp_path)
    second = json.loads(again.stdout)
    assert second["versions"] == 2 and second["plan"] != shown["plan"]
    assert second["next_run"].endswith("06:00:00 UTC")
    listed = alamode("schedules", "--store", "store", cwd=tmp_path)
    assert "nightly  active  0 6 * * *" in listed.stdout
    assert alamode("deactivate", "nightly", "--store", "store", cwd=tmp_path).returncode == 0
    rows = json.loads(alamode("schedules", "--store", "store", "--json", cwd=tmp_path).stdout)
    assert rows[0]["active"] is False and rows[0]["next_run"] is None
    no_schedule = alamode("activate", "flow.yaml", "--store", "store", cwd=tmp_path)
    (tmp_path / "bad.yaml").write_text(FLOW.replace("{name: nightly}", "{schedule: 'sometimes'}"))
    bad = alamode("activate", "bad.yaml", "--store", "store", cwd=tmp_path)
    assert no_schedule.returncode == 0
    assert bad.returncode == 2 and "is not a cron expression" in bad.stderr


def test_the_clock_runs_a_due_slot_once_never_doubles_and_catches_up_once(
    tmp_path: Path,
) -> None:
    """The service's clock, driven with chosen times and real runs of ``alamode run``."""
    from a_la_mode.service.clock import Clock
    from a_la_mode.service.runs import RunManager
    from a_la_mode.service.schedules import ScheduleBook
    from a_la_mode.store.directory import LocalStore

    slow = FLOW.replace("meta: {name: nightly}", "meta: {name: nightly, schedule: '@hourly'}")
    (tmp_path / "flow.yaml").write_text(slow.replace("seq 1 5 >", "sleep 3; seq 1 5 >"))
    assert alamode("activate", "flow.yaml", "--store", "store", cwd=tmp_path).returncode == 0
    store = LocalStore(tmp_path / "store")
    book = ScheduleBook(store.root)
    manager = RunManager(str(tmp_path / "store"), {}, "local")
    clock = Clock(book, manager, lambda digest: str(store.outputs.plan_path(digest)))
    hour = 3600.0
    activated = book.get("nightly").current.activated
    first_slot = (activated // hour + 1) * hour
    assert clock.tick(first_slot - 1) == []  # nothing is due before the first slot
    [started] = clock.tick(first_slot + 5)
    assert started.outcome == "started" and started.at == first_slot
    assert clock.tick(first_slot + 10) == []  # a slot is handled once
    [skipped] = clock.tick(first_slot + hour + 5)  # the next slot, while the run goes on
    assert skipped.outcome == "skipped" and "still going" in skipped.detail
    assert manager.get(started.run).wait(60) == "succeeded"
    deadline = time.monotonic() + 10
    while book.get("nightly").slots[0].outcome == "started":  # recorded once it ended
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert book.get("nightly").slots[0].outcome == "succeeded"
    # The service was down for five slots: the latest of them runs, once.
    caught_up = [s for s in clock.tick(first_slot + 6 * hour + 5) if s.outcome == "started"]
    assert [slot.at for slot in caught_up] == [first_slot + 6 * hour]
    assert manager.get(caught_up[0].run).wait(60) == "succeeded"
    assert [s.outcome for s in book.get("nightly").slots][:2] == ["succeeded", "skipped"]
    store.close()


def test_a_big_or_tangled_plan_draws_a_readable_graph(tmp_path: Path) -> None:
    """1,000 tasks of flat names are drawn a box per level, and groups that depend on each
    other both ways too; every task stays listed under its box."""
    chains = "".join(
        f"  t{n}: {{{f'deps: [t{n - 1}], ' if n % 10 else ''}spec: {{command: 'true {n}'}}}}\n"
        for n in range(1000)
    )
    tangled = (
        "  ingest.a: {spec: {command: 'true a'}}\n"
        "  clean: {deps: [ingest.a], spec: {command: 'true c'}}\n"
        "  ingest.b: {deps: [clean], spec: {command: 'true b'}}\n"
    )
    digests = []
    for name, tasks in (("big", chains), ("tangled", tangled)):
        (tmp_path / f"{name}.yaml").write_text("tasks:\n" + tasks)
        assert alamode("push", f"{name}.yaml", "--store", "store", cwd=tmp_path).returncode == 0
        shown = alamode("show", f"{name}.yaml", "--json", cwd=tmp_path)
        digests.append(json.loads(shown.stdout)["digest"])
    service = Service(tmp_path / "store")
    try:
        status, html = service.get(f"/plans/{digests[0]}")
        assert status == 200
        assert html.count('<g class="node') == 10  # ten levels of a hundred tasks
        assert 'data-name="level 1"' in html and html.count("/tasks/t") >= 2000  # table, lists
        status, html = service.get(f"/plans/{digests[1]}")
        assert status == 200 and html.count('<g class="node') == 3  # a box per level
    finally:
        service.stop()
