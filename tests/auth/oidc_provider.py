"""The OpenID provider of the SSO tests: `oidc-provider` from the npm registry (installed by
`make test-support`), run with the machine's node, and a headless browser walk through its pages."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import free_port

SUPPORT = Path(__file__).resolve().parent.parent / "support" / "oidc"
CLIENT_ID = "neurocortex"
CLIENT_SECRET = "a-client-secret-for-tests"


class OidcProvider:
    def __init__(self, directory: Path, redirect_uris: list[str], accounts: dict[str, dict]) -> None:
        if shutil.which("node") is None or not (SUPPORT / "node_modules" / "oidc-provider").exists():
            pytest.fail("the OpenID provider is not installed: run `make test-support` (node and npm needed)")
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "oidc-provider.log"
        env = os.environ | {
            "PORT": str(self.port),
            "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": CLIENT_SECRET,
            "REDIRECT_URIS": ",".join(redirect_uris),
            "ACCOUNTS": json.dumps(accounts),
        }
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open while the provider runs
        self.process = subprocess.Popen(
            ["node", str(SUPPORT / "provider.mjs")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=SUPPORT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text(errors="replace"))
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("oidc-provider did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S | re.I)
HIDDEN = re.compile(r"<input[^>]*type=\"hidden\"[^>]*name=\"([^\"]+)\"[^>]*value=\"([^\"]*)\"", re.I)


def browse_sso(browser: httpx.Client, start: str, login: str) -> httpx.Response:
    """Follow `/api/ssoLogin` through the provider's login and consent pages as a browser would, and return
    the last answer (the server's redirect to the UI, or its error)."""
    response = browser.get(start)
    for _ in range(20):
        if str(response.url).startswith(start) and "code=" in str(response.url):
            return response  # the server's own answer to the provider's redirect back
        if response.is_redirect:
            response = browser.get(urljoin(str(response.url), response.headers["location"]))
            continue
        match = FORM.search(response.text)
        if response.status_code != 200 or match is None:
            return response
        action, body = urljoin(str(response.url), unescape(match.group(1))), match.group(2)
        data = {name: unescape(value) for name, value in HIDDEN.findall(body)}
        if 'name="login"' in body:
            data |= {"login": login, "password": "any password"}
        response = browser.post(action, data=data)
    raise AssertionError("too many steps through the provider's pages")
