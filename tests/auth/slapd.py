"""Debian's OpenLDAP slapd, started by the tests: a throwaway configuration and database in a temporary
directory, LDAP and LDAPS on free ports, the ppolicy overlay for locked accounts, seeded with ldapadd."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.auth.certs import CertificateAuthority
from tests.conftest import free_port

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PW = "reader-secret"
SLAPD = "/usr/sbin/slapd"

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {dir}/slapd.pid
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}

database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/db
maxsize 33554432
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{suffix}"
ppolicy_use_lockout
access to attrs=userPassword by anonymous auth by * none
access to * by users read by anonymous auth
"""

SEED = """\
dn: {suffix}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{suffix}
objectClass: organizationalUnit
ou: people

dn: ou=policies,{suffix}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{suffix}
objectClass: pwdPolicy
objectClass: person
cn: default
sn: policy
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 5

dn: {reader_dn}
objectClass: person
cn: reader
sn: reader
userPassword: {reader_pw}
"""


def person(uid: str, name: str, password: str, locked: bool = False) -> str:
    entry = (
        f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n"
        f"sn: {name.split()[-1]}\ndisplayName: {name}\nmail: {uid}@example.org\nuserPassword: {password}\n"
    )
    if locked:
        # a permanent lock, as an administrator (or ppolicy after pwdMaxFailure) sets it
        entry += "pwdAccountLockedTime: 000001010000Z\n"
    return entry


class Slapd:
    def __init__(self, directory: Path, ca: CertificateAuthority) -> None:
        self.directory = directory
        self.ldap_port = free_port()
        self.ldaps_port = free_port()
        self.process: subprocess.Popen | None = None
        (directory / "db").mkdir(parents=True, exist_ok=True)
        server_cert = ca.issue(f"slapd-{self.ldap_port}", server=True)
        (directory / "slapd.conf").write_text(
            CONFIG.format(
                dir=directory,
                ca=ca.cert,
                cert=server_cert.cert,
                key=server_cert.key,
                suffix=SUFFIX,
                root_dn=ROOT_DN,
                root_pw=ROOT_PW,
            )  # fmt: skip
        )

    @property
    def ldap(self) -> str:
        return f"127.0.0.1:{self.ldap_port}"

    @property
    def ldaps(self) -> str:
        return f"127.0.0.1:{self.ldaps_port}"

    def start(self) -> None:
        urls = f"ldap://127.0.0.1:{self.ldap_port}/ ldaps://127.0.0.1:{self.ldaps_port}/"
        log = open(self.directory / "slapd.log", "wb")  # noqa: SIM115 - kept open while slapd runs
        # -d keeps slapd in the foreground, so that it is our child and stops with the test
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(self.directory / "slapd.conf"), "-h", urls],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "slapd.log").read_text(errors="replace"))
            probe = subprocess.run(
                ["ldapsearch", "-x", "-H", f"ldap://{self.ldap}", "-s", "base", "-b", "", "(objectClass=*)"],
                capture_output=True,
            )
            if probe.returncode in (0, 32):
                return
            time.sleep(0.1)
        raise RuntimeError("slapd did not start")

    def add(self, ldif: str) -> None:
        subprocess.run(
            ["ldapadd", "-x", "-H", f"ldap://{self.ldap}", "-D", ROOT_DN, "-w", ROOT_PW, "-e", "relax"],
            input=ldif.encode(),
            check=True,
            capture_output=True,
        )

    def seed(self, people: list[str]) -> None:
        self.add(SEED.format(suffix=SUFFIX, reader_dn=READER_DN, reader_pw=READER_PW))
        self.add("\n".join(people))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def require_slapd() -> None:
    if not Path(SLAPD).exists() or shutil.which("ldapadd") is None:
        pytest.fail("slapd and ldap-utils are needed: apt-get install slapd ldap-utils (see .ci/run)")
