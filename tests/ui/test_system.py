"""The superadmin's system page in Chromium, on a distributed setup: a `serve` node and a `neurocortex
worker` node sharing PostgreSQL and Redis, catalogs downloaded through a proxy with a private CA bundle.
The page lists the worker node online, the catalog's sources and the proxy (its password left out) and CA
bundle their downloads use, and a refresh says what changed."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import certifi
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ROOT, TEST_WORKERS, Server, drop_database, make_server
from tests.distributed.conftest import BROKERS, POSTGRES_ADMIN, Worker, postgres_available
from tests.ui.conftest import LAPTOP, shoot, sign_in

PROXY_PASSWORD = "proxy-secret-123"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Worker]]:
    if not postgres_available():
        pytest.skip("distributed mode needs PostgreSQL on 127.0.0.1:5432")
    tmp = tmp_path_factory.mktemp("system")
    name = f"nc_test_{secrets.token_hex(6)}"
    subprocess.run(["psql", POSTGRES_ADMIN, "-qc", f"CREATE DATABASE {name}"], check=True)
    cacerts = tmp / "private-ca.pem"
    shutil.copy(certifi.where(), cacerts)  # any PEM bundle: nothing is downloaded here
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")}
    env |= {
        "NEUROCORTEX_DATABASE_URL": POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        + f"/{name}",
        "NEUROCORTEX_BROKER_URL": BROKERS["redis"],
        "NEUROCORTEX_BROKER_QUEUE": f"nc-test-{secrets.token_hex(6)}",
        "NEUROCORTEX_SECRET_KEY": secrets.token_urlsafe(48),
        "NEUROCORTEX_ANALYZERS": f"{ROOT / 'neurons' / 'analyzers'},{TEST_WORKERS / 'analyzers'}",
        "NEUROCORTEX_RESPONDERS": f"{ROOT / 'neurons' / 'responders'},{TEST_WORKERS / 'responders'}",
        "NEUROCORTEX_RUNNERS": "process",
        "NEUROCORTEX_LOG_LEVEL": "warning",
        "NEUROCORTEX_CATALOG_PROXY": f"http://catalogs:{PROXY_PASSWORD}@proxy.internal:3128",
        "NEUROCORTEX_CATALOG_CACERTS": str(cacerts),
    }  # fmt: skip
    server = make_server(tmp / "serve", extra_env=env)
    worker = Worker(tmp / "worker", env, concurrency=3)
    try:
        server.start()
        worker.start()
        yield server, worker
    finally:
        worker.stop()
        server.stop()
        drop_database(name)


@pytest.fixture(scope="module")
def page(browser: Browser, cluster: tuple[Server, Worker]) -> Iterator[Page]:
    server, worker = cluster
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    created = anonymous.post("/api/user", json={"login": "admin", "name": "Admin", "roles": ["superadmin"],
                                                 "organization": "cortex", "password": "pw"})  # fmt: skip
    assert created.status_code == 201, created.text
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    sign_in(page, server, "admin", "pw")
    yield page
    context.close()


def test_workers_online_and_catalog_sources(cluster: tuple[Server, Worker], page: Page) -> None:
    server, worker = cluster
    page.get_by_role("link", name="System").click()
    nodes = page.locator("#nodes tbody tr")
    for _ in range(60):  # the worker records itself when it is ready
        if nodes.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(nodes).to_have_count(1)
    expect(nodes.first.locator("td").nth(2)).to_have_text("3")  # its --concurrency
    api_nodes = page.request.get(f"{server.url}/api/node").json()  # the page's session
    expect(nodes.first.locator("td").first).to_have_text(api_nodes[0]["id"])

    sources = page.locator("#catalog-sources tbody tr")
    expect(sources.filter(has_text=str(TEST_WORKERS / "analyzers"))).to_contain_text("analyzer")
    expect(sources.filter(has_text=str(ROOT / "neurons" / "responders"))).to_contain_text("responder")
    expect(page.locator("#catalog-proxy")).to_have_text("http://proxy.internal:3128")
    expect(page.locator("#catalog-cacerts")).to_have_text(re.compile(r"private-ca\.pem$"))
    assert PROXY_PASSWORD not in page.content()

    page.get_by_role("button", name="Refresh the catalog").click()
    expect(page.get_by_role("status").first).to_have_text(
        "The catalog was read again: 0 added, 0 updated, 0 removed, 0 failed."
    )
    shoot(page, "superadmin/system-cluster")
