"""The README walkthrough in a real browser: the example estate under ``gateway up``,
driven by headless Chromium through chromedriver.

The repo's own ``gateway.toml`` is copied to a private directory with a free
port and absolute interpreter paths, so this is the estate ``make up`` runs.
The user opens ``/``, registers, sees the gateway's user bar, follows the
shared session into ``/v2``, uses ``/highlight`` and ``/htmldiff``, and
uploads an image to ``/thumbnails`` until the thumbnail comes back.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.procs import REPO, ProcessGroup, free_port, python2, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


def _missing_browser() -> str:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "chromium and chromium-driver (apt) are not installed"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return ""


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except OSError:
        return 0


def estate_config(workdir: str, port: int) -> str:
    """The repo's gateway.toml, moved to ``workdir`` and ``port`` with absolute paths."""
    with open(os.path.join(REPO, "gateway.toml"), encoding="utf-8") as fh:
        text = fh.read()
    for old, new in [('"127.0.0.1:8080"', f'"127.0.0.1:{port}"'),
                     ('".venv2/bin/python"', f'"{python2()}"'),
                     ('".venv/bin/python"', f'"{sys.executable}"'),
                     ('"protocol/spec"', f'"{os.path.join(REPO, "protocol", "spec")}"'),
                     ('"var/legacy.sqlite3"', f'"{os.path.join(workdir, "legacy.sqlite3")}"')]:
        assert old in text, f"gateway.toml no longer contains {old}"
        text = text.replace(old, new)
    path = os.path.join(workdir, "gateway.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


@pytest.fixture
def estate(workdir: str) -> Iterator[str]:
    """``gateway up`` on the example estate; yields its base URL."""
    missing = _missing_browser()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; scripts/bootstrap.sh and tox install them")
        pytest.skip(missing)
    port = free_port()
    config = estate_config(workdir, port)
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
            return all(_status(base + p) == 200
                       for p in ("/", "/v2/", "/highlight", "/htmldiff", "/thumbnails",
                                 "/api/whoami", "/_gateway/bar.js"))
        wait_until(up, timeout=150, interval=0.5, what="the example estate answering")
        yield base
    finally:
        for p in list(procs.procs):
            procs.stop(p, grace=20)
        procs.procs = []


@pytest.fixture
def browser(workdir: str) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver, with its own profile directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={os.path.join(workdir, 'chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def bar_text(driver: Any) -> str:
    """The user bar's text once bar.js has filled it in."""
    from selenium.webdriver.common.by import By

    def filled() -> str:
        bars = driver.find_elements(By.ID, "gateway-bar")
        return str(bars[0].text) if bars and bars[0].text else ""
    return str(wait_until(filled, timeout=15, what="the user bar"))


def test_the_readme_walkthrough_in_a_browser(estate: str, browser: Any, workdir: str) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    browser.get(estate + "/")
    assert bar_text(browser) == "not signed in"

    browser.get(estate + "/register")
    browser.find_element(By.NAME, "name").send_keys("ada")
    browser.find_element(By.NAME, "password").send_keys("correct horse")
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    wait_until(lambda: browser.current_url.rstrip("/") == estate, timeout=15,
               what="the redirect to / after registering")
    assert bar_text(browser) == "signed in as ada"
    browser.find_element(By.NAME, "body").send_keys("written on python 2")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/notes'] button").click()
    wait_until(lambda: "written on python 2" in browser.page_source, timeout=15,
               what="the note on the legacy page")

    # The Python 3 app reads the same session and database.
    browser.get(estate + "/v2/")
    assert bar_text(browser) == "signed in as ada"
    assert "written on python 2" in browser.page_source

    browser.get(estate + "/highlight")
    code = browser.find_element(By.NAME, "code")
    code.clear()
    code.send_keys("def answer():\n    return 42\n")
    browser.find_element(By.NAME, "lexer").clear()
    browser.find_element(By.NAME, "lexer").send_keys("python")
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    keyword = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".highlight .k"),
                         timeout=15, what="highlighted code")
    assert keyword[0].text == "def"
    assert bar_text(browser) == "signed in as ada"

    browser.get(estate + "/htmldiff")
    for name, value in (("old", "<p>one two</p>"), ("new", "<p>one three</p>")):
        box = browser.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "ins"), timeout=15,
               what="the diff")
    assert browser.find_element(By.CSS_SELECTOR, "del").text == "two"
    assert browser.find_element(By.CSS_SELECTOR, "ins").text == "three"

    image = os.path.join(workdir, "upload.png")
    Image.new("RGB", (300, 200), (200, 30, 30)).save(image)
    browser.get(estate + "/thumbnails")
    browser.find_element(By.NAME, "image").send_keys(image)
    size = browser.find_element(By.NAME, "size")
    size.clear()
    size.send_keys("64")
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    wait_until(lambda: "/thumbnails/" in browser.current_url, timeout=15,
               what="the redirect to the job")
    job_url = browser.current_url

    def thumbnail() -> bool:
        browser.get(job_url)
        return bool(browser.execute_script("return document.contentType") == "image/png")
    wait_until(thumbnail, timeout=60, interval=0.5, what="the thumbnail")
    with urllib.request.urlopen(job_url, timeout=10) as resp:
        thumb = Image.open(io.BytesIO(resp.read()))
    assert thumb.format == "PNG" and max(thumb.size) == 64
    shot = os.path.join(REPO, "build", "walkthrough.png")
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    browser.get(estate + "/")
    bar_text(browser)
    assert browser.save_screenshot(shot)
    print(f"screenshot: {shot} ({time.strftime('%H:%M:%S')})")
