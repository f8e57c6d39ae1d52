"""The web UI in a real headless browser (Debian's chromium and chromedriver, driven by
selenium), as a person would use it: open a plan, read its graph and tasks, start a run by
clicking and watch it finish, read a task's log, cancel a long run. A script a task prints
never runs. The screenshots are saved by these tests into a temporary folder; to refresh
the docs' pictures, run them with the docs as the target:

    SCREENSHOTS_INTO=docs/screenshots python3 -m pytest tests/test_browser.py
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, alamode, missing_service
from tests.service import Service

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[test]'")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def screenshots() -> Path:
    """Where the screenshots go: $SCREENSHOTS_INTO (relative to the checkout), else a
    temporary folder, so that a test run never changes the docs."""
    chosen = os.environ.get("SCREENSHOTS_INTO")
    if chosen:
        return ROOT / chosen
    return Path(tempfile.gettempdir()) / "alamode-screenshots"


FLOW = """
meta: {name: reports}
tasks:
  ingest.orders: {spec: {command: 'seq 1 50 > "$ALAMODE_OUTPUT/orders"; echo fetched 50 orders'}}
  ingest.users: {spec: {command: 'seq 1 20 > "$ALAMODE_OUTPUT/users"; echo fetched 20 users'}}
  clean: {deps: [ingest.orders, ingest.users], spec: {command: 'cat "$ALAMODE_INPUT_INGEST_ORDERS/orders" > "$ALAMODE_OUTPUT/clean"; echo "<script>window.__pwned=1</script><img src=x onerror=\\"window.__pwned=2\\">"'}}
  report: {deps: [clean], spec: {command: 'sleep 1; wc -l < "$ALAMODE_INPUT_CLEAN/clean" > "$ALAMODE_OUTPUT/report"'}}
"""  # noqa: E501


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        missing_service("no chromium", "apt-get install chromium chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # selenium never downloads a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str, Path]]:
    (tmp_path / "flow.yaml").write_text(FLOW)
    plan = json.loads(alamode("show", "flow.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    pushed = alamode("push", "flow.yaml", "--store", "store", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    service = Service(tmp_path / "store")
    yield service, plan, tmp_path
    service.stop()


def wait(driver: Any, seconds: float = 60) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.1)


def run_status(driver: Any) -> str:
    return str(driver.find_element(By.ID, "run-status").text)


def test_a_plan_is_inspected_run_by_a_click_and_its_log_read(
    browser: Any, served: tuple[Service, str, Path]
) -> None:
    service, plan, _ = served
    browser.get(f"{service.base}/plans/{plan}")
    assert "reports" in browser.find_element(By.TAG_NAME, "h1").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")
    assert [row.get_attribute("data-task") for row in rows] == [
        "ingest.orders", "ingest.users", "clean", "report",
    ]  # fmt: skip
    labels = [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows]
    assert labels == ["would run", "would run", "blocked", "blocked"]  # nothing ran yet
    nodes = browser.find_elements(By.CSS_SELECTOR, "#graph g.node")
    assert sorted(node.get_attribute("data-name") for node in nodes) == [
        "clean", "ingest", "report",
    ]  # the ingest group is one box  # fmt: skip
    browser.find_element(By.ID, "run-all").click()
    wait(browser).until(lambda d: run_status(d) != "running")
    assert run_status(browser) == "succeeded"
    events = [row.find_element(By.TAG_NAME, "td").text for row in
              browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")]  # fmt: skip
    assert events.count("succeed") == 4 and events[-1] == "finish"
    assert not browser.find_element(By.ID, "cancel-form").is_displayed()
    # Back on the plan: everything done, the run in its history.
    browser.get(f"{service.base}/plans/{plan}")
    statuses = {
        row.find_elements(By.TAG_NAME, "td")[1].text
        for row in browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")
    }
    assert statuses == {"done"}
    _screenshot(browser, "plan.png")
    # A task's page: its log, as text.
    browser.find_element(By.LINK_TEXT, "ingest.orders").click()
    assert browser.find_element(By.ID, "task-name").text == "ingest.orders"
    assert browser.find_element(By.ID, "log-1").text == "fetched 50 orders"
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#downstream li")] == ["clean"]
    _screenshot(browser, "task.png")


def test_a_script_in_a_log_never_runs(browser: Any, served: tuple[Service, str, Path]) -> None:
    service, plan, tmp_path = served
    assert alamode("run", "flow.yaml", "--store", "store", cwd=tmp_path).returncode == 0
    browser.get(f"{service.base}/plans/{plan}/tasks/clean")
    shown = browser.find_element(By.ID, "log-1").text
    assert shown.startswith("<script>window.__pwned=1</script><img src=x onerror=")
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []


def test_a_long_run_is_cancelled_from_the_browser(
    browser: Any, served: tuple[Service, str, Path]
) -> None:
    service, _, tmp_path = served
    (tmp_path / "long.yaml").write_text(
        "tasks:\n  long: {spec: {command: 'echo going; sleep 120'}}\n"
    )
    plan = json.loads(alamode("show", "long.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    assert alamode("push", "long.yaml", "--store", "store", cwd=tmp_path).returncode == 0
    browser.get(f"{service.base}/plans/{plan}")
    browser.find_element(By.ID, "run-all").click()
    wait(browser).until(
        lambda d: "start" in [r.find_element(By.TAG_NAME, "td").text
                              for r in d.find_elements(By.CSS_SELECTOR, "#events tbody tr")]
    )  # fmt: skip
    browser.find_element(By.ID, "cancel").click()
    wait(browser).until(lambda d: run_status(d) != "running")
    assert run_status(browser) == "interrupted"
    status = alamode("status", "long.yaml", "--store", "store", "--json", cwd=tmp_path)
    assert json.loads(status.stdout)[0]["label"] != "done"


def test_the_review_page_side_by_side(browser: Any, served: tuple[Service, str, Path]) -> None:
    service, old, tmp_path = served
    assert alamode("run", "flow.yaml", "--store", "store", cwd=tmp_path).returncode == 0
    (tmp_path / "flow2.yaml").write_text(FLOW.replace("seq 1 20", "seq 1 25"))
    new = json.loads(alamode("show", "flow2.yaml", "--json", cwd=tmp_path).stdout)["digest"]
    assert alamode("push", "flow2.yaml", "--store", "store", cwd=tmp_path).returncode == 0
    browser.get(f"{service.base}/review?old={old}&new={new}")
    changes = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#changes li")]
    assert (
        changes[0].startswith("ingest.users: changed itself: command:") and "seq 1 25" in changes[0]
    )
    assert "to compute: 3" in browser.find_element(By.ID, "estimate").text  # users and after
    row = browser.find_element(By.CSS_SELECTOR, "#side-by-side tbody tr")
    task, field, before, after = (cell.text for cell in row.find_elements(By.TAG_NAME, "td"))
    assert (task, field) == ("ingest.users", "command")
    assert "seq 1 20" in before and "seq 1 25" in after
    _screenshot(browser, "review.png")


def _screenshot(browser: Any, name: str) -> None:
    """Saved into ``screenshots()`` (docs/screenshots/ when refreshing the docs)."""
    folder = screenshots()
    folder.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(folder / f".{name}"))
    shutil.move(folder / f".{name}", folder / name)
