"""A Samba Active Directory domain controller, when this machine has one installed (apt-get install samba
samba-ad-dc samba-ad-provision) and may run it: AD's ports are fixed (389, 636), so it needs root and free
ports, and provisioning takes most of a minute — CI does not install it (see the README)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.auth.certs import CertificateAuthority

REALM, DOMAIN = "CORP.EXAMPLE", "CORP"
ADMIN_PASSWORD = "Adm1n-Passw0rd!"


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_samba() -> None:
    if shutil.which("samba-tool") is None or shutil.which("samba") is None:
        pytest.skip("no Samba AD DC on this machine (apt-get install samba samba-ad-dc samba-ad-provision)")
    if os.geteuid() != 0:
        pytest.skip("a Samba AD DC needs root (its ports are 389 and 636)")
    if _port_taken(389) or _port_taken(636):
        pytest.skip("ports 389/636 are taken: one AD DC per machine")


class SambaDomainController:
    def __init__(self, directory: Path, ca: CertificateAuthority) -> None:
        self.directory = directory
        self.process: subprocess.Popen | None = None
        subprocess.run(
            ["samba-tool", "domain", "provision", "--targetdir", str(directory), "--realm", REALM,
             "--domain", DOMAIN, "--server-role", "dc", "--dns-backend", "NONE", "--adminpass", ADMIN_PASSWORD],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        server = ca.issue("samba-dc", server=True)
        conf = directory / "etc" / "smb.conf"
        conf.write_text(
            conf.read_text().replace(
                "[global]\n",
                f"[global]\n\ttls enabled = yes\n\ttls keyfile = {server.key}\n\ttls certfile = {server.cert}\n"
                f"\ttls cafile = {ca.cert}\n\tlog file = {directory}/samba.%m.log\n",
                1,
            )
        )
        self.conf = conf

    def start(self) -> None:
        log = open(self.directory / "samba.log", "wb")  # noqa: SIM115 - kept open while samba runs
        # its own process group: samba starts helpers, stopped with it
        self.process = subprocess.Popen(
            ["samba", "-i", "-M", "single", "-s", str(self.conf)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "samba.log").read_text(errors="replace"))
            if _port_taken(636):
                return
            time.sleep(0.2)
        raise RuntimeError("samba did not start")

    def tool(self, *args: str) -> None:
        subprocess.run(
            ["samba-tool", *args, "-H", "ldap://127.0.0.1", "-U", f"{DOMAIN}\\Administrator",
             f"--password={ADMIN_PASSWORD}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
