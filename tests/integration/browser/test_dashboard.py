"""The migration dashboard in a real browser: the example estate under ``gateway up``,
whose notes API (``/api/notes``) shadows its Python 3 port, driven by headless
Chromium through chromedriver.

The estate is the walkthrough's (the repo's ``gateway.toml`` on a free port,
see :func:`tests.integration.browser.test_walkthrough.estate_config`) with a
private run directory. Two notes of 2 and 3 words make the port answer
``avg_words`` 2 where Python 2 answers 3.0, so every shadowed GET is a
regression. The test opens ``/_gateway/#token=...``, restarts the evidence
with Shadow, sends traffic until the card's regression count rises, presses
Promote and answers the confirm() dialog, sees the gate's refusal and its
reasons, forces the promotion, and finds both changes in the audit log. A
parity file in the estate's directory fills the tox parity table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.browser.test_walkthrough import (
    CHROMEDRIVER,
    CHROMIUM,
    _missing_browser,
    estate_config,
)
from tests.integration.metrics.conftest import total
from tests.integration.migration.conftest import add_notes
from tests.support.procs import REPO, ProcessGroup, free_port, wait_until

pytestmark = pytest.mark.slow

NAME = "notes"                  # [migrations.notes] in gateway.toml
TRAFFIC = "/api/notes?limit=2"  # the migrated route, over the two notes seeded below
ROUTE = "/api/notes"            # its prefix, the route label of its metrics
TRAFFIC_LIMIT = 300             # GETs before giving up on a regression
# Services echo what clients send; the page must show it as text, never run it.
HOSTILE = "<img src=x onerror=document.title='pwned'><script>document.title='pwned'</script>"


class Estate:
    """A running estate: its base URL and run directory."""

    def __init__(self, base: str, run_dir: str) -> None:
        self.base = base
        self.run_dir = run_dir

    @property
    def token(self) -> str:
        """The admin token the front wrote into the run directory."""
        with open(os.path.join(self.run_dir, "admin.token"), encoding="utf-8") as fh:
            return fh.read().strip()


def _metrics(base: str) -> str:
    """The text of ``/_gateway/metrics`` (from loopback)."""
    with urllib.request.urlopen(base + "/_gateway/metrics", timeout=5.0) as resp:
        text: str = resp.read().decode("utf-8")
        return text


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=5) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except OSError:
        return 0


def migrating_config(workdir: str, port: int) -> tuple[str, str]:
    """The example estate's config with a private run directory; (path, run_dir)."""
    path = estate_config(workdir, port)
    run_dir = os.path.join(workdir, "run")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    for needed in ('run_dir = "var/run"', f"[migrations.{NAME}]"):
        assert needed in text, f"gateway.toml no longer contains {needed}"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace('run_dir = "var/run"', f'run_dir = "{run_dir}"'))
    return path, run_dir


def write_parity(workdir: str) -> dict[str, Any]:
    """A contract-suite parity table where the config's default parity_file looks for it."""
    parity = {"implementations": {"py2": {"python": "2.7.18", "updated": 1},
                                  "py3": {"python": "3.11.9", "updated": 1}},
              "services": {"highlight": {"py2": {"passed": 12, "failed": 0, "status": "pass"},
                                         "py3": {"passed": 11, "failed": 1, "status": "fail"},
                                         "parity": {"cases": 30, "same": 28, "different": 2,
                                                    "status": "different", "diffs": []}}}}
    os.makedirs(os.path.join(workdir, "build"))
    with open(os.path.join(workdir, "build", "parity.json"), "w", encoding="utf-8") as fh:
        json.dump(parity, fh)
    return parity


def seed_notes(workdir: str) -> None:
    """Two notes of 2 and 3 words in the estate's database (estate_config puts it in workdir)."""
    add_notes(os.path.join(workdir, "legacy.sqlite3"))


@pytest.fixture
def estate(workdir: str) -> Iterator[Estate]:
    """``gateway up`` on the example estate, its notes API in shadow."""
    missing = _missing_browser()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; scripts/bootstrap.sh and tox install them")
        pytest.skip(missing)
    port = free_port()
    config, run_dir = migrating_config(workdir, port)
    seed_notes(workdir)
    write_parity(workdir)
    procs = ProcessGroup()
    log_path = os.path.join(workdir, "arbiter.log")
    try:
        with open(log_path, "wb") as log:
            proc = procs.spawn([sys.executable, "-m", "gateway", "-c", config, "up",
                                "--no-color"], stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if proc.poll() is not None:
                with open(log_path, encoding="utf-8", errors="replace") as fh:
                    raise AssertionError("gateway up exited:\n" + fh.read()[-4000:])
            return (all(_status(base + p) == 200 for p in ("/", "/_gateway/",
                                                            "/_gateway/dashboard.js"))
                    and os.path.exists(os.path.join(run_dir, "admin.token")))
        wait_until(up, timeout=150, interval=0.5, what="the migrating estate answering")
        yield Estate(base, run_dir)
    finally:
        for p in list(procs.procs):
            procs.stop(p, grace=20)
        procs.procs = []


@pytest.fixture
def browser(workdir: str) -> Iterator[Any]:
    """Headless Chromium with its own profile, tall enough for the whole page in one screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1400,2600",
                 f"--user-data-dir={os.path.join(workdir, 'chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def press(driver: Any, card: Any, action: str) -> str:
    """Click ``action`` on ``card``, accept its confirm(); the confirm's question."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    card.find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]').click()
    alert = WebDriverWait(driver, 5).until(ec.alert_is_present())
    question = str(alert.text)
    alert.accept()
    return question


def message(driver: Any, verb: str) -> str:
    """The page's answer to the last ``verb`` (without the reasons) once the API answered."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def answered(d: Any) -> str:
        # #message itself is never replaced; its first line is the answer, then the reasons.
        text = str(d.find_element(By.ID, "message").text).split("\n")[0]
        return text if text.startswith(f"{verb} {NAME}:") and "sending" not in text else ""
    return str(WebDriverWait(driver, 15).until(answered))


def test_dashboard_shows_diffs_and_gates_promotion(estate: Estate, browser: Any) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    token = estate.token
    browser.get(estate.base + "/_gateway/#token=not-the-token")
    banner = browser.find_element(By.ID, "banner")
    WebDriverWait(browser, 15).until(lambda d: banner.is_displayed())
    assert banner.text == "the admin token is missing or wrong"
    assert "not-the-token" not in browser.current_url

    # A fragment change (hashchange) brings the right token; the next poll clears the banner.
    browser.get(estate.base + "/_gateway/#token=" + token)
    card = WebDriverWait(browser, 15).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'[data-migration="{NAME}"]'))
    assert token not in browser.current_url and "#" not in browser.current_url
    WebDriverWait(browser, 15).until(
        lambda d: card.find_element(By.CSS_SELECTOR, ".sample-count").text.isdigit())
    WebDriverWait(browser, 15).until(
        lambda d: not d.find_element(By.ID, "banner").is_displayed())
    parity = {c.get_attribute("data-runtime"): c.text for c in browser.find_elements(
        By.CSS_SELECTOR, '#parity tr[data-service="highlight"] td[data-runtime]')}
    assert parity == {"py2": "pass: 12 passed, 0 failed", "py3": "fail: 11 passed, 1 failed"}
    verdict = browser.find_element(
        By.CSS_SELECTOR, '#parity tr[data-service="highlight"] td[data-parity]')
    assert verdict.text == "different: 2 of 30 cases"

    # Shadow restarts the evidence, so the counts below are this test's traffic.
    assert NAME in press(browser, card, "shadow")
    assert message(browser, "shadow").endswith("now shadow")
    WebDriverWait(browser, 15).until(
        lambda d: card.find_element(By.CSS_SELECTOR, ".sample-count").text == "0")
    mode = card.find_element(By.CSS_SELECTOR, ".mode")
    assert mode.text == "shadow"

    sent = [0]

    def diff_seen(d: Any) -> bool:
        if sent[0] < TRAFFIC_LIMIT:
            for _ in range(5):
                assert _status(estate.base + TRAFFIC, {"X-Note": HOSTILE}) == 200
                sent[0] += 1
        return int(card.find_element(By.CSS_SELECTOR, ".diff-count").text or 0) > 0
    WebDriverWait(browser, 60, poll_frequency=0.1).until(diff_seen)
    samples = int(card.find_element(By.CSS_SELECTOR, ".sample-count").text)
    print(f"regressions shown after {sent[0]} GETs ({samples} samples on the card)")
    assert 0 < samples <= sent[0]
    # The runtime rows show what /_gateway/metrics counts for the route (one set of
    # counters); the traffic has stopped, so both settle on the same figures.
    shown: dict[str, str] = {}
    scraped: dict[str, str] = {}

    def rows_are_the_metrics(d: Any) -> bool:
        text = _metrics(estate.base)
        scraped.update({rt: str(int(total(text, "gateway_http_requests_total", route=ROUTE,
                                          runtime=rt))) for rt in ("py2", "py3")})
        shown.update({rt: card.find_element(
            By.CSS_SELECTOR, f'tr[data-runtime="{rt}"] td.requests').text
            for rt in ("py2", "py3")})
        return shown == scraped
    try:
        WebDriverWait(browser, 15, poll_frequency=0.2,
                      ignored_exceptions=(StaleElementReferenceException,)).until(
            rows_are_the_metrics)
    except Exception:
        raise AssertionError(f"the card shows {shown}, the metrics say {scraped}") from None
    assert int(shown["py2"]) >= sent[0]   # the route served at least this test's GETs
    row = card.find_element(By.CSS_SELECTOR, 'tr[data-runtime="py2"]')
    assert row.get_attribute("data-source") == "metrics"
    diff = WebDriverWait(browser, 15).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#diffs .diff"))[0]
    assert HOSTILE in diff.find_element(By.CSS_SELECTOR, "details pre").get_attribute(
        "textContent")

    def noise_marked(d: Any) -> bool:
        """generated_at is marked noise in every row shown, avg_words in none."""
        marks: dict[str, set[bool]] = {}
        for row in d.find_elements(By.CSS_SELECTOR, "#diffs .diff tr"):
            code = row.find_elements(By.CSS_SELECTOR, "code")
            if code:
                field = code[0].text.rsplit("/", 1)[-1]
                marks.setdefault(field, set()).add("noisy" in (row.get_attribute("class") or ""))
        return marks.get("generated_at") == {True} and marks.get("avg_words") == {False}
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        noise_marked)
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
    assert browser.title == "Gateway migrations"

    # Every shadowed GET is a regression, so the gate must refuse and say why.
    assert f"Promote {NAME}" in press(browser, card, "promote")
    assert message(browser, "promote").endswith("refused by the gate (gate_refused)")
    reasons = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#message .reasons li")]
    assert reasons and all(reasons), reasons
    assert mode.text == "shadow"
    shot = os.path.join(REPO, "build", "screenshots", "dashboard.png")
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    assert browser.save_screenshot(shot)
    print(f"screenshot: {shot}")

    # Force appears only after a refusal.
    force = card.find_element(By.CSS_SELECTOR, 'button[data-action="force-promote"]')
    assert force.is_displayed()
    assert "although the gate refused" in press(browser, card, "force-promote")
    assert message(browser, "promote").endswith("now py3")
    WebDriverWait(browser, 15).until(lambda d: mode.text == "py3")
    assert not force.is_displayed()

    def audited(d: Any) -> str:
        rows = d.find_elements(By.CSS_SELECTOR, "#audit .audit-row")
        return str(rows[0].text) if rows and "→ py3" in rows[0].text else ""
    latest = WebDriverWait(browser, 15).until(audited)
    assert f"{NAME}: shadow → py3 by dashboard" in latest and "forced" in latest
    earlier = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audit .audit-row")[1:]]
    assert any(f"{NAME}: shadow → shadow by dashboard" in t for t in earlier), earlier
    assert token not in browser.current_url
    # Script errors and CSP violations; failed requests (the 409) are the network's.
    errors = [e for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and e.get("source") != "network"]
    assert not errors, errors
