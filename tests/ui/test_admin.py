"""Administrators in Chromium: an orgadmin's catalogs, workers enabled, edited and disabled through forms
generated from their definitions, base configurations and users with their API keys; a superadmin's
organizations, users of every organization and system page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import Server, Tenant, new_tenant
from tests.ui.conftest import LAPTOP, set_password, shoot, sign_in

PASSWORD = "admin pass"
SECRET = "SECRET-KEY-123"


@pytest.fixture(scope="module")
def tenant(superadmin: httpx.Client) -> Tenant:
    tenant = new_tenant(superadmin)
    set_password(superadmin, f"{tenant.org}-admin", PASSWORD)
    return tenant


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=LAPTOP)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def page(context: BrowserContext, server: Server, tenant: Tenant) -> Page:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, server, f"{tenant.org}-admin", PASSWORD)
    return page


def _workers(tenant: Tenant, kind: str = "analyzer") -> dict[str, dict]:
    answer = tenant.admin.get(f"/api/organization/{kind}", params={"range": "all"})
    assert answer.status_code == 200, answer.text
    return {w["name"]: w for w in answer.json()}


def test_catalog_search_and_data_type_filter(server: Server, page: Page) -> None:
    page.get_by_role("link", name="Analyzers").click()
    expect(page.get_by_role("heading", name="Analyzers")).to_be_visible()
    rows = page.locator("#catalog tbody tr")
    expect(rows.filter(has_text="FileInfo")).to_have_count(1)
    page.get_by_label("Search").fill("echo")
    expect(rows.filter(has_text="FileInfo")).to_have_count(0)
    expect(rows.filter(has_text="Echo")).not_to_have_count(0)
    page.get_by_label("Search").fill("")
    page.get_by_label("Data type").select_option("file")
    expect(rows.filter(has_text="FileInfo")).to_have_count(1)
    expect(rows.filter(has_text="Hostile_Crash")).to_have_count(0)  # ip, domain, other only
    shoot(page, "admin/analyzers")


def test_enable_edit_and_disable_an_analyzer(server: Server, page: Page, tenant: Tenant) -> None:
    page.goto(f"{server.url}/ui/admin/analyzers?q=Echo")
    page.get_by_role("link", name="Enable Echo", exact=True).click()
    expect(page.get_by_role("heading", name="Enable Echo")).to_be_visible()
    # the form follows the definition: defaults filled in, the secret masked, multi values as lines
    expect(page.get_by_label("level", exact=True)).to_have_value("info")
    expect(page.get_by_label("limit", exact=True)).to_have_value("5")
    expect(page.get_by_label("api_key", exact=True)).to_have_attribute("type", "password")
    page.get_by_label("api_key", exact=True).fill(SECRET)
    page.get_by_label("level", exact=True).fill("suspicious")
    page.get_by_label("tags", exact=True).fill("first\nsecond")
    page.get_by_label("limit", exact=True).fill("7")
    page.get_by_label("verbose", exact=True).check()
    page.get_by_label("Rate limit (jobs)").fill("100")
    page.get_by_label("per").select_option("Day")
    page.get_by_label("Runner").select_option("process")
    shoot(page, "admin/enable-echo")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status").first).to_have_text("Echo_1_0 enabled.")

    echo = _workers(tenant)["Echo"]
    assert echo["configuration"]["api_key"] == SECRET
    assert echo["configuration"]["tags"] == ["first", "second"]
    assert echo["configuration"]["limit"] == 7 and echo["configuration"]["verbose"] is True
    assert (echo["rate"], echo["rateUnit"], echo["runner"]) == (100, "Day", "process")

    # editing: the secret never reaches the page, and is kept when left empty
    page.get_by_role("link", name="Edit Echo").click()
    expect(page.get_by_role("heading", name="Edit Echo")).to_be_visible()
    assert SECRET not in page.content()
    expect(page.get_by_label("api_key", exact=True)).to_have_attribute(
        "placeholder", "set: leave empty to keep it"
    )
    expect(page.get_by_label("tags", exact=True)).to_have_value("first\nsecond")
    page.get_by_label("limit", exact=True).fill("9")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_have_text("Echo saved.")
    echo = _workers(tenant)["Echo"]
    assert echo["configuration"]["limit"] == 9 and echo["configuration"]["api_key"] == SECRET

    # a wrong value is refused with the reason, nothing changes
    page.get_by_role("link", name="Edit Echo").click()
    page.get_by_label("jobCache", exact=True).fill("-1")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("jobCache")
    assert _workers(tenant)["Echo"]["configuration"]["jobCache"] == 10

    page.goto(f"{server.url}/ui/admin/analyzers?q=Echo")
    page.get_by_role("button", name="Disable Echo").click()
    expect(page.get_by_role("status").first).to_have_text("Echo disabled.")
    assert "Echo" not in _workers(tenant)


def test_required_items_and_responders(server: Server, page: Page, tenant: Tenant) -> None:
    page.get_by_role("link", name="Responders").click()
    page.get_by_role("link", name="Enable Webhook").click()
    url = page.get_by_label(re.compile(r"^url"))
    expect(url).to_have_attribute("required", "")
    expect(page.locator("label[for='config-url']")).to_contain_text("(required)")
    url.fill("https://hooks.example/x")
    page.get_by_label("headers", exact=True).fill("X-One: 1\nX-Two: 2")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status").first).to_have_text("Webhook_1_0 enabled.")
    webhook = _workers(tenant, "responder")["Webhook"]
    assert webhook["configuration"]["headers"] == ["X-One: 1", "X-Two: 2"]


def test_base_configuration_prefills_new_workers(server: Server, page: Page, tenant: Tenant) -> None:
    page.goto(f"{server.url}/ui/admin/analyzers")
    page.get_by_role("link", name="Base configurations of the analyzers").click()
    page.locator("summary", has_text="Echo").first.click()
    form = page.get_by_role("form", name="Base configuration Echo")
    form.get_by_label("api_key", exact=True).fill("BASE-KEY-456")
    form.get_by_label("level", exact=True).fill("malicious")
    form.get_by_role("button", name="Save Echo").click()
    expect(page.get_by_role("status").first).to_have_text("Echo saved.")
    shoot(page, "admin/base-configs")

    page.goto(f"{server.url}/ui/admin/analyzers/enable/Echo_1_0")
    expect(page.get_by_label("level", exact=True)).to_have_value("malicious")
    expect(page.get_by_label("api_key", exact=True)).to_have_attribute(
        "placeholder", "set: leave empty to keep it"
    )
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status").first).to_have_text("Echo_1_0 enabled.")
    assert _workers(tenant)["Echo"]["configuration"]["api_key"] == "BASE-KEY-456"


def test_users_roles_passwords_and_keys(server: Server, page: Page, tenant: Tenant) -> None:
    login = f"{tenant.org}-bob"
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name=f"Users of {tenant.org}")).to_be_visible()
    expect(page.get_by_role("link", name=f"{tenant.org}-analyst")).to_be_visible()
    expect(page.get_by_label("superadmin")).to_have_count(0)  # not a role an orgadmin grants
    page.get_by_label("Login").fill(login)
    page.get_by_label("Name").fill("Bob")
    page.get_by_label("read").check()
    page.get_by_label("Password (optional").fill("bob pass")
    page.get_by_role("button", name="Create the user").click()
    expect(page.get_by_role("status").first).to_have_text("The user was created.")

    page.get_by_label("analyze").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_have_text("Saved.")

    page.get_by_role("button", name="Create a key").click()
    key = page.get_by_label(f"API key of {login}").input_value()
    me = httpx.get(f"{server.url}/api/user/current", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["roles"] == ["read", "analyze"]
    page.goto(f"{server.url}/ui/admin/users/{login}")
    expect(page.get_by_label(f"API key of {login}")).to_have_count(0)  # shown only when asked
    page.get_by_role("button", name="Reveal the key").click()
    expect(page.get_by_label(f"API key of {login}")).to_have_value(key)
    page.get_by_role("button", name="Revoke the key").click()
    expect(page.get_by_role("status").first).to_have_text("The API key was revoked.")
    assert (
        httpx.get(f"{server.url}/api/user/current", headers={"Authorization": f"Bearer {key}"}).status_code
        == 401
    )

    page.get_by_label("New password").fill("bob new pass")
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_role("status").first).to_have_text("The password was set.")
    bob = {"user": login, "password": "bob new pass"}
    assert httpx.post(f"{server.url}/api/login", json=bob).status_code == 200

    page.get_by_role("button", name="Lock the account").click()
    expect(page.locator("dl.facts")).to_contain_text("Locked")
    assert httpx.post(f"{server.url}/api/login", json=bob).status_code == 401
    page.get_by_role("button", name="Unlock the account").click()
    expect(page.locator("dl.facts")).to_contain_text("Ok")
    assert httpx.post(f"{server.url}/api/login", json=bob).status_code == 200
    shoot(page, "admin/user")


def test_superadmin_organizations_users_and_system(server: Server, browser: Browser, tenant: Tenant) -> None:
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(page, server, "admin", "pw")
        page.get_by_role("link", name="Organizations").click()
        page.get_by_label("Name").fill("acme")
        page.get_by_label("Description").fill("Acme Corp")
        page.get_by_role("button", name="Create the organization").click()
        expect(page.get_by_role("status").first).to_have_text("Organization acme created.")
        row = page.locator("tbody tr", has_text="acme")
        expect(row).to_contain_text("Active")
        page.get_by_role("button", name="Lock acme").click()
        expect(page.locator("tbody tr", has_text="acme")).to_contain_text("Locked")
        page.get_by_role("button", name="Unlock acme").click()
        expect(page.locator("tbody tr", has_text="acme")).to_contain_text("Active")
        shoot(page, "superadmin/organizations")

        # users of every organization, one organization at a time
        page.get_by_role("link", name=tenant.org).click()
        expect(page.locator("tbody tr")).to_have_count(4)  # admin, analyst, reader, bob
        page.get_by_label("Show the users of").select_option("")
        expect(page.locator("tbody tr", has_text="cortex")).to_have_count(1)
        page.get_by_label("Login").fill("acme-admin")
        page.get_by_label("Name").fill("Acme admin")
        page.locator("#new-organization").select_option("acme")
        page.get_by_label("orgadmin").check()
        page.get_by_role("button", name="Create the user").click()
        expect(page.locator("dl.facts")).to_contain_text("acme")

        page.get_by_role("link", name="System").click()
        runners = page.get_by_role("region", name="Runners")
        expect(runners.locator("tr", has_text="process")).to_contain_text("yes")
        expect(page.locator("#queue-waiting")).to_have_text(re.compile(r"^\d+$"))
        expect(page.locator("#nodes-none")).to_be_visible()  # no `neurocortex worker`: this server runs jobs
        expect(page.locator("#catalog-sources tbody tr").first).to_contain_text("local")
        expect(page.locator("#catalog-proxy")).to_contain_text("none")
        analyzers = page.locator("#catalog-analyzers").inner_text()
        assert int(analyzers) > 5
        page.get_by_role("button", name="Refresh the catalog").click()
        expect(page.get_by_role("status").first).to_have_text(
            "The catalog was read again: 0 added, 0 updated, 0 removed, 0 failed."
        )
        expect(page.locator("#catalog-analyzers")).to_have_text(analyzers)
        shoot(page, "superadmin/system")
    finally:
        context.close()
