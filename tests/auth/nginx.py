"""Debian's nginx doing mutual TLS in front of a neurocortex server, run from a throwaway prefix (not the
system service): verifies client certificates against a CA and passes them on in headers, from its own
source address so that the server can tell the proxy from anyone else."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.auth.certs import CertificateAuthority
from tests.conftest import free_port

CONFIG = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {client_ca};
        ssl_verify_client optional;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind {source};
            proxy_set_header Host $host;
            # always set by nginx, so a client cannot bring its own
            proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, directory: Path, server_ca: CertificateAuthority, client_ca: Path, upstream: int,
                 source: str) -> None:  # fmt: skip
        if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
            pytest.fail("nginx is needed: apt-get install nginx (see .ci/run)")
        self.directory = directory
        self.port = free_port()
        server_cert = server_ca.issue("nginx", server=True)
        (directory / "nginx.conf").write_text(
            CONFIG.format(
                dir=directory,
                port=self.port,
                cert=server_cert.cert,
                key=server_cert.key,
                client_ca=client_ca,
                upstream=upstream,
                source=source,
            )  # fmt: skip
        )
        self.process = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", str(directory), "-c", str(directory / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((directory / "error.log").read_text(errors="replace"))
            try:
                httpx.get(self.url, verify=False, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
