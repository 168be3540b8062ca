"""Secrets: `password` configuration items are write-only through the API, secrets never reach a failed
job's input or error message, and `neurocortex secrets rotate` re-encrypts everything with a new key —
crash-safe, the old key still readable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from neurocortex.crypto import ROTATING_FILE, SecretBox, begin_rotation
from neurocortex.services.secrets import _reencrypt
from neurocortex.store import tables as t
from neurocortex.store.db import Database
from tests.auth.conftest import running
from tests.conftest import (
    ROOT,
    TEST_WORKERS,
    Server,
    Tenant,
    bootstrap_superadmin,
    enable,
    new_tenant,
    run_and_wait,
)

# the Vault test analyzer lives beside these tests, so that suites counting the shared test workers do
# not see it
VAULT_SOURCE = Path(__file__).resolve().parent / "workers" / "analyzers"
MASK = "********"


def with_vault() -> dict[str, str]:
    return {
        "NEUROCORTEX_ANALYZERS": f"{ROOT / 'neurons' / 'analyzers'},{TEST_WORKERS / 'analyzers'},{VAULT_SOURCE}"
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("server"), with_vault()) as srv:
        yield srv


TOKEN = "tok-Secret-1234567"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(client: httpx.Client, worker_id: str, data: str) -> dict:
    # a fresh observable each time: the job cache would answer a repeated one with the previous report
    observable = data if data in ("crash", "refused") else f"{data}-{secrets.token_hex(4)}"
    return run_and_wait(client, worker_id, {"data": observable, "dataType": "other"})


def test_password_items_are_write_only(server: Server, tenant: Tenant) -> None:
    worker = enable(
        tenant.admin, "analyzer", "Vault_1_0", configuration={"token": TOKEN, "endpoint": "https://a"}
    )
    shown = tenant.admin.get(f"/api/analyzer/{worker['id']}").json()["configuration"]
    assert shown["token"] == MASK and shown["endpoint"] == "https://a"
    assert TOKEN not in tenant.admin.get("/api/analyzer").text
    # the UI sends the whole configuration back: the mask keeps the stored token
    patched = tenant.admin.patch(
        f"/api/analyzer/{worker['id']}", json={"configuration": shown | {"endpoint": "https://b"}}
    )
    assert patched.status_code == 200 and patched.json()["configuration"]["token"] == MASK
    report = run(tenant.analyst, worker["id"], "ok")["report"]["full"]
    assert report == {"sha256": sha(TOKEN), "endpoint": "https://b"}
    # a new value replaces it
    changed = tenant.admin.patch(
        f"/api/analyzer/{worker['id']}", json={"configuration": {"token": "other-token"}}
    )
    assert changed.status_code == 200, changed.text
    assert run(tenant.analyst, worker["id"], "ok")["report"]["full"]["sha256"] == sha("other-token")


def test_base_configuration_secrets_are_write_only(server: Server, tenant: Tenant) -> None:
    saved = tenant.admin.patch("/api/analyzerconfig/Vault", json={"config": {"token": "base-token-999"}})
    assert saved.status_code == 200 and saved.json()["config"]["token"] == MASK
    assert tenant.admin.get("/api/analyzerconfig/Vault").json()["config"]["token"] == MASK
    listed = tenant.admin.get("/api/analyzerconfig").text
    assert "base-token-999" not in listed
    resaved = tenant.admin.patch(
        "/api/analyzerconfig/Vault", json={"config": {"token": MASK, "endpoint": "e"}}
    )
    assert resaved.status_code == 200
    # a worker enabled from the pre-filled (masked) base configuration gets the real token
    worker = enable(
        tenant.admin, "analyzer", "Vault_1_0", name="Vault-from-base", configuration={"token": MASK}
    )
    assert run(tenant.analyst, worker["id"], "ok")["report"]["full"]["sha256"] == sha("base-token-999")


@pytest.mark.parametrize(
    ("data", "message"),
    [("crash", "connecting with token REMOVED"), ("refused", "the service refused token REMOVED")],
)
def test_secrets_are_redacted_from_failed_jobs(
    server: Server, tenant: Tenant, data: str, message: str
) -> None:
    worker = enable(
        tenant.admin, "analyzer", "Vault_1_0", name=f"Vault-{data}", configuration={"token": TOKEN}
    )
    done = run(tenant.analyst, worker["id"], data)
    assert done["status"] == "Failure"
    assert message in done["report"]["errorMessage"]
    job_text = tenant.analyst.get(f"/api/job/{done['id']}/report").text
    assert TOKEN not in job_text
    if data == "refused":  # cortexutils echoed its input; "token" is not a name cortexutils redacts
        echoed = json.loads(done["report"]["input"])  # a JSON string, as Cortex sends it
        assert echoed["config"]["token"] == "REMOVED"
    assert TOKEN not in server.log()


# -- key rotation -------------------------------------------------------------------------------------------


def rotate(server: Server) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neurocortex", "secrets", "rotate"], env=server.env, cwd=server.data_dir,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def stored_configurations(server: Server) -> list[str]:
    url = server.env.get("NEUROCORTEX_DATABASE_URL") or f"sqlite:///{server.data_dir / 'neurocortex.db'}"

    async def read() -> list[str]:
        db = Database(url)
        try:
            async with db.read() as conn:
                return [row[0] for row in await conn.execute(select(t.worker.c.configuration))]
        finally:
            await db.close()

    return asyncio.run(read())


def readable_with(secret: bytes, tokens: list[str]) -> bool:
    box = SecretBox(secret)
    try:
        for token in tokens:
            box.decrypt(token)
    except ValueError:
        return False
    return True


def test_rotation_reencrypts_and_keeps_keys_sessions_and_configurations(tmp_path: Path) -> None:
    with running(tmp_path, with_vault()) as srv:
        superadmin = bootstrap_superadmin(srv)
        tenant = new_tenant(superadmin)
        worker = enable(tenant.admin, "analyzer", "Vault_1_0", configuration={"token": TOKEN})
        session = httpx.Client(base_url=srv.url)
        assert session.post("/api/login", json={"user": "admin", "password": "pw"}).status_code == 200
        srv.stop()
        old = (srv.data_dir / "secret.key").read_bytes().strip()

        done = rotate(srv)
        assert done.returncode == 0, done.stderr
        assert "re-encrypted 1 worker configurations" in done.stdout
        new = (srv.data_dir / "secret.key").read_bytes().strip()
        assert new != old and (srv.data_dir / "secret.key.previous").read_bytes().split() == [old]
        assert not (srv.data_dir / ROTATING_FILE).exists()
        stored = stored_configurations(srv)
        assert readable_with(new, stored) and not readable_with(old, stored)

        srv.start(timeout=120)  # a restart on a busy CI machine can be slow
        assert tenant.analyst.get("/api/user/current").status_code == 200  # API keys re-keyed
        assert session.get("/api/user/current").status_code == 200  # sessions signed with the old key
        assert run(tenant.analyst, worker["id"], "ok")["report"]["full"]["sha256"] == sha(TOKEN)

        # a rotation interrupted after the new key was written and some rows re-encrypted...
        srv.stop()
        upcoming = begin_rotation(srv.data_dir)
        url = srv.env.get("NEUROCORTEX_DATABASE_URL") or f"sqlite:///{srv.data_dir / 'neurocortex.db'}"

        async def half_done() -> None:
            db = Database(url)
            try:
                await _reencrypt(db, t.worker, "configuration", SecretBox(upcoming, [new, old]))
            finally:
                await db.close()

        asyncio.run(half_done())
        # ...leaves a server that reads everything
        srv.start(timeout=120)  # a restart on a busy CI machine can be slow
        assert tenant.analyst.get("/api/user/current").status_code == 200
        assert run(tenant.analyst, worker["id"], "ok")["report"]["full"]["sha256"] == sha(TOKEN)
        srv.stop()
        # and running it again finishes it with the same new key
        assert rotate(srv).returncode == 0
        assert (srv.data_dir / "secret.key").read_bytes().strip() == upcoming
        assert readable_with(upcoming, stored_configurations(srv))
        srv.start(timeout=120)  # a restart on a busy CI machine can be slow
        assert tenant.analyst.get("/api/user/current").status_code == 200
        assert run(tenant.analyst, worker["id"], "ok")["report"]["full"]["sha256"] == sha(TOKEN)
