"""Catalog management: http(s) catalogs behind a private CA and a proxy, the last good copy kept when a
download fails, `neurocortex catalog list|refresh|show`, the scheduled refresh, and pinned workers against
workers that follow the newest version (§5.1, issue 4 item 4).

The catalogs are served by a real HTTPS server started here with a certificate of a CA made here; the
proxy is a small CONNECT proxy started here."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import TEST_WORKERS, Server, Tenant, drop_database, enable, make_server, new_tenant


def definition(name: str, version: str = "1.0", **extra) -> dict:
    """A definition as the official catalogs give them: a docker image, no command."""
    return {
        "name": name,
        "version": version,
        "author": "tests",
        "url": "https://example.invalid",
        "license": "AGPL-V3",
        "description": f"{name} from a remote catalog",
        "dataTypeList": ["domain", "ip"],
        "baseConfig": name,
        "dockerImage": f"example.invalid/{name.lower()}:{version}",
        "configurationItems": [
            {"name": "api_key", "description": "the key", "type": "string", "multi": False, "required": True}
        ],
    } | extra


# -- a private CA, an HTTPS catalog server and a CONNECT proxy --


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """(CA bundle, server certificate, server key); the server certificate names 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "neurocortex test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class CatalogFiles(http.server.BaseHTTPRequestHandler):
    """Serves `files[path] = (status, body)`; what each test sets is what the next download gets."""

    files: dict[str, tuple[int, bytes]] = {}
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        status, body = self.files.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def publish(path: str, definitions: list | None = None, status: int = 200, body: bytes | None = None) -> None:
    CatalogFiles.files[path] = (status, body if body is not None else json.dumps(definitions).encode())


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that only tunnels (CONNECT), which is how https is fetched through a proxy; it records
    the targets it was asked for."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ConnectHandler)
        self.targets: list[str] = []


class ConnectHandler(socketserver.StreamRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        request = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # the headers of the CONNECT request
        if len(request) < 2 or request[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.targets.append(request[1])
        host, port = request[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            client = self.connection
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 10)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    directory = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_ca_and_server_cert(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CatalogFiles)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    proxy = ConnectProxy()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    empty = directory / "no-responders"
    empty.mkdir()
    yield {
        "ca": ca,
        "base": f"https://127.0.0.1:{httpd.server_address[1]}",
        "proxy": proxy,
        "empty": empty,
    }
    httpd.shutdown()
    httpd.server_close()
    proxy.shutdown()
    proxy.server_close()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")} | {"COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "neurocortex", *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=60,
    )


def rows(output: str, change: str) -> list[str]:
    """The lines of `catalog refresh`'s table for one kind of change."""
    return [line for line in output.splitlines() if line.strip("│ ").startswith(change + " ")]


# -- the command line --


def test_private_ca_is_needed_and_enough(tls: dict, tmp_path: Path) -> None:
    url = f"{tls['base']}/ca/analyzers.json"
    publish(url.removeprefix(tls["base"]), [definition("Remote"), definition("Other", "2.1")])
    sources = ["--analyzers", url, "--responders", str(tls["empty"])]

    # without the CA the download is refused, the reason says so, and nothing is invented
    refused = cli("catalog", "refresh", "--data-dir", str(tmp_path / "without"), *sources)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    failed = rows(refused.stdout, "failed")
    assert len(failed) == 1 and url in refused.stdout, refused.stdout
    assert "not trusted" in refused.stdout and "NEUROCORTEX_CATALOG_CACERTS" in refused.stdout, refused.stdout
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stdout, refused.stdout
    assert "catalog: https" in refused.stderr and "not trusted" in refused.stderr  # and it is logged
    assert rows(refused.stdout, "added") == []

    # with it the catalog loads; every definition is new the first time
    with_ca = {"NEUROCORTEX_CATALOG_CACERTS": str(tls["ca"])}
    data = ["--data-dir", str(tmp_path / "with")]
    loaded = cli("catalog", "refresh", *data, *sources, env=with_ca)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    added = rows(loaded.stdout, "added")
    assert len(added) == 2 and rows(loaded.stdout, "failed") == [], loaded.stdout
    assert any("Remote" in line and "1.0" in line for line in added), loaded.stdout
    assert any("Other" in line and "2.1" in line for line in added), loaded.stdout
    assert "2 analyzers, 0 responders; 2 added, 0 updated, 0 removed, 0 failed" in loaded.stdout

    # `catalog list`: docker-only definitions are listed with their image
    listed = cli("catalog", "list", *data, *sources, env=with_ca)
    assert listed.returncode == 0, listed.stderr
    assert "analyzers (2)" in listed.stdout and "Remote_1_0" in listed.stdout and "Other_2_1" in listed.stdout
    assert "example.invalid/remote:1.0" in listed.stdout

    # `catalog show NAME`: one definition, its data types and configuration items
    shown = cli("catalog", "show", "Remote", *data, *sources, env=with_ca)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "Remote_1_0" in out and "domain, ip" in out and "example.invalid/remote:1.0" in out, out
    assert "configuration items of Remote_1_0 (1)" in out, out
    item = next(line for line in out.splitlines() if "api_key" in line)
    assert "string" in item and "yes" in item and "the key" in item, out
    assert "Other_2_1" not in out
    missing = cli("catalog", "show", "Nope", *data, *sources, env=with_ca)
    assert missing.returncode == 1 and "no definition named Nope" in missing.stdout


def test_refresh_reports_changes_and_keeps_the_last_good_copy(tls: dict, tmp_path: Path) -> None:
    path = "/changes/analyzers.json"
    url = tls["base"] + path
    env = {"NEUROCORTEX_CATALOG_CACERTS": str(tls["ca"])}
    args = ["--data-dir", str(tmp_path), "--analyzers", url, "--responders", str(tls["empty"])]
    publish(path, [definition("Stays"), definition("Bumped"), definition("Leaves")])
    assert cli("catalog", "refresh", *args, env=env).returncode == 0

    nothing = cli("catalog", "refresh", *args, env=env)
    assert "0 added, 0 updated, 0 removed, 0 failed" in nothing.stdout, nothing.stdout

    publish(
        path,
        [
            definition("Stays", dockerImage="example.invalid/stays:1.0-fixed"),
            definition("Bumped", "1.1"),
            definition("Arrives"),
            definition("Commanded", command="Commanded/run.py"),
            {"name": "NoVersion"},
        ],
    )
    changed = cli("catalog", "refresh", *args, env=env)
    out = changed.stdout
    assert changed.returncode == 0, out + changed.stderr  # bad entries do not fail the source
    assert [line for line in rows(out, "added") if "Arrives" in line], out
    assert [line for line in rows(out, "removed") if "Leaves" in line], out
    updated = rows(out, "updated")
    assert any("Bumped" in line and "1.0 → 1.1" in line for line in updated), out
    assert any("Stays" in line and "example.invalid/stays:1.0-fixed" in line for line in updated), out
    failed = rows(out, "failed")
    assert any("Commanded" in line and "may not give a command" in line for line in failed), out
    assert any("NoVersion" in line and "version" in line for line in failed), out

    # the server fails, then serves garbage: each time the last good copy stays, and the failure is shown
    for status, body, reason in (
        (503, b"down", "HTTP 503"),
        (200, b"<html>oops</html>", "not a JSON catalog"),
    ):
        publish(path, status=status, body=body)
        kept = cli("catalog", "refresh", *args, env=env)
        assert kept.returncode == 1, kept.stdout
        failed = [line for line in rows(kept.stdout, "failed") if "download failed" in line]
        assert len(failed) == 1 and reason in failed[0] and "using the copy downloaded" in failed[0], (
            kept.stdout
        )
        assert rows(kept.stdout, "removed") == [] and rows(kept.stdout, "added") == [], kept.stdout
        listed = cli("catalog", "list", *args, env=env)
        assert "analyzers (3)" in listed.stdout and "Bumped_1_1" in listed.stdout, listed.stdout


def test_download_through_a_proxy(tls: dict, tmp_path: Path) -> None:
    path = "/proxied/analyzers.json"
    publish(path, [definition("ViaProxy")])
    proxy: ConnectProxy = tls["proxy"]
    target = tls["base"].removeprefix("https://")
    before = proxy.targets.count(target)
    env = {
        "NEUROCORTEX_CATALOG_CACERTS": str(tls["ca"]),
        "NEUROCORTEX_CATALOG_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
    }
    args = ["--data-dir", str(tmp_path), "--analyzers", tls["base"] + path, "--responders", str(tls["empty"])]
    through = cli("catalog", "refresh", *args, env=env)
    assert through.returncode == 0, through.stdout + through.stderr
    assert any("ViaProxy" in line for line in rows(through.stdout, "added")), through.stdout
    assert proxy.targets.count(target) == before + 1  # the download went through the proxy

    # a proxy that is not there: the download fails with the reason, the copy from before stays
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    dead_proxy = f"http://nc-user:pw-secret@127.0.0.1:{dead}"
    broken = cli("catalog", "refresh", *args, env=env | {"NEUROCORTEX_CATALOG_PROXY": dead_proxy})
    assert broken.returncode == 1 and "using the copy downloaded" in broken.stdout, broken.stdout
    assert "pw-secret" not in broken.stdout + broken.stderr  # credentials never reach the output
    assert "ConnectError" in broken.stdout or "proxy" in broken.stdout, broken.stdout


# -- the server: scheduled refresh, pinned and following workers --


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tls: dict) -> Iterator[Server]:
    publish("/server/analyzers.json", [definition("Remote")])
    publish("/server/strict.json", [definition("Strict")])
    srv = make_server(
        tmp_path_factory.mktemp("server"),
        extra_env={
            "NEUROCORTEX_ANALYZERS": ",".join(
                [
                    str(TEST_WORKERS / "analyzers"),
                    f"{tls['base']}/server/analyzers.json",
                    f"{tls['base']}/server/strict.json",
                ]
            ),
            "NEUROCORTEX_RESPONDERS": str(tls["empty"]),
            "NEUROCORTEX_CATALOG_CACERTS": str(tls["ca"]),
            "NEUROCORTEX_CATALOG_REFRESH_INTERVAL": "0.5",
            "NEUROCORTEX_LOG_LEVEL": "info",
        },
    )
    srv.start()
    yield srv
    srv.stop()
    db_url = srv.env.get("NEUROCORTEX_DATABASE_URL", "")
    if "nc_test_" in db_url:
        drop_database(db_url.rsplit("/", 1)[1])


def wait_for(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def definition_ids(client: httpx.Client) -> set[str]:
    return {d["id"] for d in client.get("/api/analyzerdefinition").json()}


def test_pinned_worker_keeps_its_version_while_the_others_follow(
    server: Server, superadmin: httpx.Client, tls: dict
) -> None:
    org: Tenant = new_tenant(superadmin)
    assert "Remote_1_0" in definition_ids(org.admin)
    follower = enable(org.admin, "analyzer", "Remote_1_0", name="Follower", configuration={"api_key": "k1"})
    pinned = enable(org.admin, "analyzer", "Remote_1_0", name="Pinned", pinned=True,
                    configuration={"api_key": "k2"})  # fmt: skip
    assert pinned["pinned"] is True and "pinned" not in follower
    bad = org.admin.patch(f"/api/analyzer/{pinned['id']}", json={"pinned": "yes"})
    assert bad.status_code == 400 and bad.json()["type"] == "AttributeCheckingError", bad.text
    assert org.analyst.get("/api/alert").json() == []

    # the catalog brings version 2.0 (a new image and a new item with a default); the scheduled refresh
    # picks it up without anyone asking
    new_item = {"name": "region", "description": "r", "type": "string", "multi": False, "required": False,
                "defaultValue": "eu"}  # fmt: skip
    two = definition("Remote", "2.0")
    two["configurationItems"].append(new_item)
    publish("/server/analyzers.json", [two])
    wait_for(
        lambda: definition_ids(org.admin) & {"Remote_1_0", "Remote_2_0"} == {"Remote_2_0"}, "version 2.0"
    )
    wait_for(lambda: org.admin.get(f"/api/analyzer/{follower['id']}").json()["version"] == "2.0", "follower")

    moved = org.admin.get(f"/api/analyzer/{follower['id']}").json()
    assert moved["workerDefinitionId"] == moved["analyzerDefinitionId"] == "Remote_2_0", moved
    assert moved["dockerImage"] == "example.invalid/remote:2.0" and moved["name"] == "Follower"
    assert moved["configuration"]["api_key"] == "k1" and moved["configuration"]["region"] == "eu"
    kept = org.admin.get(f"/api/analyzer/{pinned['id']}").json()
    assert (kept["version"], kept["workerDefinitionId"], kept["dockerImage"]) == (
        "1.0", "Remote_1_0", "example.invalid/remote:1.0",
    ), kept  # fmt: skip
    assert kept["pinned"] is True and kept["configuration"]["api_key"] == "k2"
    # its definition left the catalog: the organization is alerted, and the worker is still listed
    assert org.analyst.get("/api/alert").json() == ["ObsoleteAnalyzers"]
    log = server.log()
    assert "catalog refresh: updated analyzer Remote: 1.0 → 2.0" in log, log
    assert f"analyzer Follower of {org.org}: Remote_1_0 → Remote_2_0" in log, log

    # unpinned, it follows at once
    unpinned = org.admin.patch(f"/api/analyzer/{pinned['id']}", json={"pinned": False})
    assert unpinned.status_code == 200, unpinned.text
    body = unpinned.json()
    assert body["version"] == "2.0" and body["workerDefinitionId"] == "Remote_2_0" and "pinned" not in body
    assert body["configuration"]["api_key"] == "k2" and body["configuration"]["region"] == "eu"
    assert org.analyst.get("/api/alert").json() == []


def test_failed_download_keeps_the_catalog(server: Server, superadmin: httpx.Client, tls: dict) -> None:
    org: Tenant = new_tenant(superadmin)
    publish("/server/analyzers.json", [definition("Remote", "3.0")])
    wait_for(lambda: "Remote_3_0" in definition_ids(org.admin), "version 3.0")
    publish("/server/analyzers.json", status=500, body=b"broken")
    wait_for(lambda: "download failed: HTTP 500" in server.log(), "a failed scheduled refresh")
    time.sleep(1)  # a few more refreshes, all failing
    assert "Remote_3_0" in definition_ids(org.admin)  # still there, from the last good copy
    assert "removed analyzer Remote" not in server.log()
    publish("/server/analyzers.json", [definition("Remote", "3.0")])


def test_a_version_the_configuration_does_not_fit_is_not_taken(
    server: Server, superadmin: httpx.Client
) -> None:
    org: Tenant = new_tenant(superadmin)
    strict = enable(org.admin, "analyzer", "Strict_1_0", configuration={"api_key": "k"})
    secret = {"name": "secret", "description": "s", "type": "string", "multi": False, "required": True}
    two = definition("Strict", "2.0")
    two["configurationItems"].append(secret)
    publish("/server/strict.json", [two])
    wait_for(lambda: "Strict_2_0" in definition_ids(org.admin), "version 2.0")
    wait_for(lambda: f"analyzer Strict_1_0 of {org.org} not moved" in server.log(), "the refused move")
    assert "its configuration does not fit" in server.log() and "secret" in server.log()
    stays = org.admin.get(f"/api/analyzer/{strict['id']}").json()
    assert stays["workerDefinitionId"] == "Strict_1_0" and stays["configuration"]["api_key"] == "k"
    assert org.analyst.get("/api/alert").json() == ["ObsoleteAnalyzers"]  # it is left on a vanished version

    # a version whose new required item has a default fits: the worker takes it
    later = definition("Strict", "2.1")
    later["configurationItems"].append(secret | {"defaultValue": "s3"})
    publish("/server/strict.json", [later])
    wait_for(lambda: org.admin.get(f"/api/analyzer/{strict['id']}").json()["version"] == "2.1", "version 2.1")
    moved = org.admin.get(f"/api/analyzer/{strict['id']}").json()
    assert moved["configuration"]["api_key"] == "k" and moved["configuration"]["secret"] == "s3"
    assert org.analyst.get("/api/alert").json() == []
