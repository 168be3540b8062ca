"""First run and the session, in Chromium: the setup page (with the setup token, as from another machine),
signing in by keyboard, signing out, the warning before the session ends and the end itself."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import Server, make_server
from tests.ui.conftest import LAPTOP, PHONE, shoot

SETUP_TOKEN = "setup-token-for-the-ui-test"
# short enough to watch the warning and the end of a session within the test
LIFETIME, WARNING = 14, 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(
        tmp_path_factory.mktemp("ui-first-run"),
        {
            "NEUROCORTEX_SETUP_TOKEN": SETUP_TOKEN,
            "NEUROCORTEX_SESSION_INACTIVITY": str(LIFETIME),
            "NEUROCORTEX_SESSION_WARNING": str(WARNING),
        },
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    # as through a reverse proxy: the server must not take the browser for one on its own machine
    ctx = browser.new_context(viewport=LAPTOP, extra_http_headers={"X-Forwarded-For": "198.51.100.7"})
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def test_setup_needs_the_token_from_elsewhere_and_creates_the_superadmin(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/ui/setup")
    expect(page.get_by_role("heading", name="Welcome to neurocortex")).to_be_visible()
    shoot(page, "first-run/setup")

    page.get_by_label("Login", exact=True).fill("chief")
    page.get_by_label("Name").fill("Chief Admin")
    page.get_by_label("Password", exact=True).fill("s3cret pass")
    page.get_by_label("Password again").fill("s3cret pass")
    page.get_by_label("Setup token").fill("not the token")
    page.get_by_role("button", name="Create the superadmin").click()
    expect(page.get_by_role("alert")).to_contain_text("setup token")
    assert (
        httpx.post(f"{server.url}/api/login", json={"user": "chief", "password": "s3cret pass"}).status_code
        == 401
    )
    shoot(page, "first-run/setup-wrong-token")

    page.get_by_label("Password", exact=True).fill("s3cret pass")
    page.get_by_label("Password again").fill("s3cret pass")
    page.get_by_label("Setup token").fill(SETUP_TOKEN)
    page.get_by_role("button", name="Create the superadmin").click()
    # signed in at once, on the account page (a superadmin reads no jobs)
    expect(page).to_have_url(f"{server.url}/ui/account")
    expect(page.locator("dl.facts")).to_contain_text("superadmin")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    # the setup page is gone once a user exists
    page.goto(f"{server.url}/ui/setup")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_sign_out_then_in_with_the_keyboard(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/ui/account")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(f"{server.url}/ui/account")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/account"))

    # a wrong password is refused with a message
    page.get_by_label("Login").fill("chief")
    page.get_by_label("Password").fill("wrong")
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Wrong login or password")
    shoot(page, "first-run/login-refused")

    # keyboard only: the login field has the focus, Tab to the password, Enter to send
    page.get_by_label("Login").fill("")
    page.get_by_label("Login").focus()
    page.keyboard.type("chief")
    page.keyboard.press("Tab")
    page.keyboard.type("s3cret pass")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.url}/ui/account")  # back where the visitor was going
    expect(page.get_by_role("heading", name="My account")).to_be_visible()


def test_warning_before_the_session_ends_then_the_end(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/ui/account")
    dialog = page.get_by_role("dialog", name="Your session is about to end")
    expect(dialog).to_be_hidden()
    # it shows `WARNING` seconds before the end of the session
    expect(dialog).to_be_visible(timeout=(LIFETIME - WARNING + 3) * 1000)
    expect(dialog).to_contain_text("seconds")
    shoot(page, "first-run/session-warning")

    dialog.get_by_role("button", name="Stay signed in").click()
    expect(dialog).to_be_hidden()
    # the session was renewed on the server too: well past the first end, the page still works
    page.wait_for_timeout((LIFETIME - WARNING + 1) * 1000)
    page.reload()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()

    # left alone, the session ends and the page says so
    expect(page).to_have_url(re.compile(r"/ui/login\?expired"), timeout=(LIFETIME + 5) * 1000)
    expect(page.get_by_role("status")).to_contain_text("Your session ended")
    page.goto(f"{server.url}/ui/account")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_pages_fit_a_phone(server: Server, browser: Browser) -> None:
    phone = browser.new_context(viewport=PHONE, is_mobile=True)
    try:
        page = phone.new_page()
        page.goto(f"{server.url}/ui/login")
        expect(page.get_by_role("button", name="Sign in")).to_be_in_viewport()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the login page is {width} px wide on a {PHONE['width']} px phone"
        shoot(page, "first-run/login-phone")
    finally:
        phone.close()


def test_own_password_and_api_key(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/ui/login")
    page.get_by_label("Login").fill("chief")
    page.get_by_label("Password").fill("s3cret pass")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()

    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password", exact=True).fill("n3w pass")
    page.get_by_label("New password again").fill("n3w pass")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_have_text("The current password is wrong.")

    page.get_by_label("Current password").fill("s3cret pass")
    page.get_by_label("New password", exact=True).fill("n3w pass")
    page.get_by_label("New password again").fill("n3w pass")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status").first).to_have_text("Your password was changed.")
    assert (
        httpx.post(f"{server.url}/api/login", json={"user": "chief", "password": "n3w pass"}).status_code
        == 200
    )

    page.get_by_role("button", name="Create my key").click()
    key = page.get_by_label("Your API key").input_value()
    assert len(key) >= 32
    me = httpx.get(f"{server.url}/api/user/current", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["login"] == "chief"
    page.goto(f"{server.url}/ui/account")
    expect(page.get_by_label("Your API key")).to_have_count(0)  # never shown unless asked
    page.get_by_role("button", name="Reveal my key").click()
    expect(page.get_by_label("Your API key")).to_have_value(key)
    page.get_by_role("button", name="Renew my key").click()  # confirmed by the dialog handler
    expect(page.get_by_label("Your API key")).not_to_have_value(key)
    old = httpx.get(f"{server.url}/api/user/current", headers={"Authorization": f"Bearer {key}"})
    assert old.status_code == 401
    shoot(page, "first-run/account")
