"""Shared test fixtures: a real neurocortex server over HTTP, started as its own process."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_WORKERS = Path(__file__).resolve().parent / "workers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url(tmp: Path) -> tuple[str | None, str | None]:
    """(database URL for the server, name of a PostgreSQL database to drop afterwards).

    NEUROCORTEX_TEST_DATABASE=postgresql runs the suite on a fresh PostgreSQL database per server.
    """
    if os.environ.get("NEUROCORTEX_TEST_DATABASE", "sqlite") != "postgresql":
        return None, None
    name = f"nc_test_{secrets.token_hex(6)}"
    admin = os.environ.get("NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


def drop_database(name: str) -> None:
    admin = os.environ.get("NEUROCORTEX_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


@dataclass
class Server:
    """A running `neurocortex serve` process and what is needed to talk to it."""

    data_dir: Path
    port: int
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self.log_path = self.data_dir / "server.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "neurocortex", "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/status", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self, kill: bool = False) -> None:
        stop_process(self.process, kill)

    def log(self) -> str:
        return read_log(self.log_path)


def stop_process(process: subprocess.Popen | None, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL), then SIGKILL if it has not ended 20 s later."""
    if process and process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_log(path: Path | None) -> str:
    return path.read_text(errors="replace") if path and path.exists() else ""


def make_server(tmp: Path, extra_env: dict[str, str] | None = None, args: list[str] | None = None) -> Server:
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")}
    env |= {
        "NEUROCORTEX_DATA_DIR": str(data_dir),
        "NEUROCORTEX_ANALYZERS": f"{ROOT / 'neurons' / 'analyzers'},{TEST_WORKERS / 'analyzers'}",
        "NEUROCORTEX_RESPONDERS": f"{ROOT / 'neurons' / 'responders'},{TEST_WORKERS / 'responders'}",
        "NEUROCORTEX_RUNNERS": "process",
        "NEUROCORTEX_LOG_LEVEL": "warning",
    }
    database_url, _ = test_database_url(tmp)
    if database_url:
        env["NEUROCORTEX_DATABASE_URL"] = database_url
    env |= extra_env or {}
    return Server(data_dir=data_dir, port=free_port(), env=env, args=args or [])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test module: tests in a module share it and use their own organizations."""
    srv = make_server(tmp_path_factory.mktemp("server"))
    srv.start()
    yield srv
    srv.stop()
    db_url = srv.env.get("NEUROCORTEX_DATABASE_URL", "")
    if "nc_test_" in db_url:
        drop_database(db_url.rsplit("/", 1)[1])


@dataclass
class Tenant:
    """An organization with an orgadmin, an analyst and a read-only user, each with an API key."""

    org: str
    admin: httpx.Client
    analyst: httpx.Client
    reader: httpx.Client
    admin_key: str
    analyst_key: str


def bearer(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def bootstrap_superadmin(server: Server) -> httpx.Client:
    """The first superadmin of a fresh server, created through the `init` pseudo-user (we are on loopback),
    logged in with a session and given an API key through it (CSRF header included)."""
    anonymous = httpx.Client(base_url=server.url, timeout=60)
    body = {
        "login": "admin",
        "name": "Admin",
        "roles": ["superadmin"],
        "organization": "cortex",
        "password": "pw",
    }
    created = anonymous.post("/api/user", json=body)
    assert created.status_code == 201, created.text
    assert anonymous.post("/api/login", json={"user": "admin", "password": "pw"}).status_code == 200
    renewed = anonymous.post("/api/user/admin/key/renew", headers=xsrf_header(anonymous))
    assert renewed.status_code == 200, renewed.text
    return bearer(server.url, renewed.text)


@pytest.fixture(scope="module")
def superadmin(server: Server) -> httpx.Client:
    return bootstrap_superadmin(server)


def xsrf_header(client: httpx.Client) -> dict[str, str]:
    return {"X-CORTEX-XSRF-TOKEN": client.cookies.get("CORTEX-XSRF-TOKEN", "")}


def new_tenant(superadmin: httpx.Client, name: str | None = None) -> Tenant:
    org = name or f"org-{secrets.token_hex(4)}"
    assert superadmin.post("/api/organization", json={"name": org, "description": "test"}).status_code == 201
    keys = {}
    for login, roles in (
        (f"{org}-admin", ["read", "analyze", "orgadmin"]),
        (f"{org}-analyst", ["read", "analyze"]),
        (f"{org}-reader", ["read"]),
    ):
        response = superadmin.post(
            "/api/user", json={"login": login, "name": login, "roles": roles, "organization": org}
        )
        assert response.status_code == 201, response.text
        keys[login] = superadmin.post(f"/api/user/{login}/key/renew").text
    url = str(superadmin.base_url).rstrip("/")
    return Tenant(
        org=org,
        admin=bearer(url, keys[f"{org}-admin"]),
        analyst=bearer(url, keys[f"{org}-analyst"]),
        reader=bearer(url, keys[f"{org}-reader"]),
        admin_key=keys[f"{org}-admin"],
        analyst_key=keys[f"{org}-analyst"],
    )


@pytest.fixture(scope="module")
def tenant(superadmin: httpx.Client) -> Tenant:
    return new_tenant(superadmin)


def enable(client: httpx.Client, kind: str, definition: str, **body) -> dict:
    body.setdefault("name", definition)
    response = client.post(f"/api/organization/{kind}/{definition}", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def run_and_wait(client: httpx.Client, worker_id: str, body: dict, kind: str = "analyzer", **params) -> dict:
    response = client.post(f"/api/{kind}/{worker_id}/run", json=body, params=params)
    assert response.status_code == 200, response.text
    job = response.json()
    report = client.get(f"/api/job/{job['id']}/waitreport", params={"atMost": "60 seconds"})
    assert report.status_code == 200, report.text
    return report.json()
