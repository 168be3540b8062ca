"""Browser fixtures: Debian's Chromium driven by Playwright (its own browser download is never used), one
browser per test module, and a folder for the screenshots of every page the tests visit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import ROOT, Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-output" / "ui"
LAPTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shoot(page: Page, name: str) -> None:
    """A full-page screenshot under test-output/ui/<module>/ (kept out of git).

    Chromium captures beyond the viewport by scrolling the page to its end without telling the compositor;
    the next mouse press puts the old scroll position back, so a button pressed right after a screenshot
    moves away between mousedown and mouseup and the click lands on its form (no submission). Scrolling back
    to where the page was keeps what the test sees and what the browser hit-tests the same."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    x, y = page.evaluate("[window.scrollX, window.scrollY]")
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    page.evaluate("([x, y]) => window.scrollTo(x, y)", [x, y])


def set_password(superadmin: httpx.Client, login: str, password: str) -> None:
    answer = superadmin.post(f"/api/user/{login}/password/set", json={"password": password})
    assert answer.status_code == 204, answer.text


def sign_in(page: Page, server: Server, login: str, password: str) -> None:
    page.goto(f"{server.url}/ui/login")
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui/(jobs|account|analyze).*"))
