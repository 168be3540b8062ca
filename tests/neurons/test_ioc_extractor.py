import hashlib
import json
from email.message import EmailMessage

from .conftest import artifact_set, taxonomies

FLAVOR = "IOCExtractor"

REPORT_TEXT = """Incident notes
The loader beacons to hxxps://update-check[.]xyz/gate.php?id=7 and falls back to 185.220.101[.]4.
Phishing mails came from billing(at)invoices-portal(dot)com; internal host 10.20.30.40 was hit.
Placeholders 192.0.2.10 and 127.0.0.1 are not indicators. Version 1.2.3.4.5 is not an address.
Dropped file: svchost32.exe (sha256 9F86D081884C7D659A2FEAEA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A0).
Persistence: HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\updater
The build script setup.py and notes.txt are not domains; c2.evil-domain.co.uk is.
"""


def test_free_text_file(make_job):
    report = make_job(
        FLAVOR, "file", file_bytes=REPORT_TEXT.encode(), filename="notes.txt", content_type="text/plain"
    ).run()
    assert report["success"] is True
    found = artifact_set(report)
    assert found == {
        ("url", "https://update-check.xyz/gate.php?id=7"),
        ("domain", "update-check.xyz"),
        ("ip", "185.220.101.4"),
        ("mail", "billing@invoices-portal.com"),
        ("domain", "invoices-portal.com"),
        ("ip", "10.20.30.40"),
        ("filename", "svchost32.exe"),
        ("hash", "9f86d081884c7d659a2feaea0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0"),
        ("registry", "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\updater"),
        ("fqdn", "c2.evil-domain.co.uk"),
    }
    tax = taxonomies(report)
    assert tax["ip"] == ("info", 2)
    assert tax["domain"] == ("info", 2)
    assert tax["url"] == ("info", 1)
    assert report["full"]["counts"]["hash"] == 1
    assert all(a.get("message") for a in report["artifacts"])


def test_artifacts_do_not_depend_on_auto_extract(make_job):
    # Extraction is the analyzer's purpose: Cortex's default auto_extract_artifacts=false must not hide it.
    job = make_job(
        FLAVOR, "other", "see hxxp://bad[.]example[.]net/x", config={"auto_extract_artifacts": False}
    )
    assert ("url", "http://bad.example.net/x") in artifact_set(job.run())


def test_other_observable_excludes_itself(make_job):
    report = make_job(FLAVOR, "url", "https://redirect.example.com/?u=https://evil.example.org/p").run()
    found = artifact_set(report)
    assert ("url", "https://redirect.example.com/?u=https://evil.example.org/p") not in found
    assert ("fqdn", "redirect.example.com") in found


def test_mail_subject(make_job):
    report = make_job(FLAVOR, "mail_subject", "Your parcel: track at dhl-parcel[.]info/track").run()
    assert ("domain", "dhl-parcel.info") in artifact_set(report)


def test_nothing_found(make_job):
    report = make_job(FLAVOR, "other", "nothing to see here").run()
    assert report["artifacts"] == []
    assert taxonomies(report) == {"IOCs": ("info", 0)}


def test_binary_file_strings(make_job):
    blob = bytearray(b"MZ\x90\x00" + bytes(range(256)) * 40)
    blob += b"\x00\x00http://203.0.113.99.nip.io/stage2\x00\x00"
    blob += "\x00C:\\Users\\Public\\loader.dll\x00".encode("utf-16-le")
    blob += b"\x00" * 64 + "https://wide.example.org/w".encode("utf-16-le") + b"\x00" * 8
    report = make_job(FLAVOR, "file", file_bytes=bytes(blob), filename="sample.bin").run()
    assert report["full"]["source"] == "strings"
    found = artifact_set(report)
    assert ("url", "http://203.0.113.99.nip.io/stage2") in found
    assert ("url", "https://wide.example.org/w") in found
    assert ("filename", "loader.dll") in found


def test_large_file_is_capped(make_job):
    filler = b"lorem ipsum dolor sit amet " * 40_000  # ~1 MB
    blob = b"first http://early.example.com/a\n" + filler * 2 + b"\nlast http://late.example.com/b\n"
    report = make_job(FLAVOR, "file", file_bytes=blob, filename="big.log", config={"max_size_mb": 1}).run()
    assert report["success"] is True
    assert report["full"]["truncated"] is True
    assert report["full"]["bytesRead"] == 1024 * 1024
    found = artifact_set(report)
    assert ("url", "http://early.example.com/a") in found
    assert ("url", "http://late.example.com/b") not in found


def test_default_cap_is_20_megabytes(make_job):
    job = make_job(FLAVOR, "file", file_bytes=b"x", filename="x.txt")
    config = json.loads((job.directory / "input" / "input.json").read_text())["config"]
    assert config["max_size_mb"] == 20
    assert job.run()["full"]["truncated"] is False


def test_bad_size_limit_is_an_error(make_job):
    report = make_job(FLAVOR, "file", file_bytes=b"x", filename="x.txt", config={"max_size_mb": -1}).run()
    assert report["success"] is False
    assert "max_size_mb" in report["errorMessage"]


def test_invalid_utf8_text(make_job):
    blob = b"caf\xe9 \xff\xfe? visit http://ok.example.com/x \xc3\x28"
    report = make_job(FLAVOR, "file", file_bytes=blob, filename="latin1.txt").run()
    assert ("url", "http://ok.example.com/x") in artifact_set(report)


def build_phish() -> bytes:
    msg = EmailMessage()
    msg["Received"] = (
        "from mx.victim.example (mx.victim.example [10.0.0.5]) by mail.victim.example; Mon, 1 Jan 2024 10:00:02 +0000"
    )
    msg["Received"] = (
        "from smtp.bad-sender.net (unknown [45.133.1.20]) by mx.victim.example with ESMTP; Mon, 1 Jan 2024 10:00:01 +0000"
    )
    msg["Authentication-Results"] = (
        "mx.victim.example; spf=fail smtp.mailfrom=bank.example; dkim=none; dmarc=fail"
    )
    msg["Return-Path"] = "<bounce@bad-sender.net>"
    msg["From"] = "Your Bank <security@bank.example.com>"
    msg["Reply-To"] = "helpdesk@collector.example.org"
    msg["To"] = "victim@victim.example.com"
    msg["Subject"] = "Urgent: verify your account"
    msg["X-Originating-IP"] = "[45.133.1.21]"
    msg.set_content("Please verify at hxxps://secure-bank-login[.]top/verify today.\n")
    msg.add_alternative(
        '<html><body><p>Log in at <a href="https://secure-bank-login.top/v">https://www.bank.example.com</a>'
        '</p><img src="http://tracker.example.net/p.gif"></body></html>',
        subtype="html",
    )
    msg.add_attachment(
        b"MZ\x90\x00fake executable",
        maintype="application",
        subtype="octet-stream",
        filename="invoice.pdf.exe",
    )
    msg.add_attachment("contact 91.215.85.17 for details\n", subtype="plain", filename="notes.txt")
    msg.add_attachment(
        b"second file with the same name",
        maintype="application",
        subtype="octet-stream",
        filename="notes.txt",
    )
    return msg.as_bytes()


def test_eml(make_job):
    raw = build_phish()
    job = make_job(FLAVOR, "file", file_bytes=raw, filename="phish.eml", content_type="message/rfc822")
    report = job.run()
    assert report["success"] is True, report
    full = report["full"]
    assert full["source"] == "email"
    found = artifact_set(report)
    expected = {
        ("mail", "security@bank.example.com"),
        ("mail", "helpdesk@collector.example.org"),
        ("mail", "bounce@bad-sender.net"),
        ("mail", "victim@victim.example.com"),
        ("mail_subject", "Urgent: verify your account"),
        ("ip", "45.133.1.20"),
        ("ip", "45.133.1.21"),
        ("fqdn", "smtp.bad-sender.net"),
        ("url", "https://secure-bank-login.top/verify"),
        ("url", "https://secure-bank-login.top/v"),
        ("url", "http://tracker.example.net/p.gif"),
        ("ip", "91.215.85.17"),
        ("filename", "invoice.pdf.exe"),
        ("filename", "notes.txt"),
        ("hash", hashlib.sha256(b"MZ\x90\x00fake executable").hexdigest()),
    }
    assert expected <= found, expected - found
    assert ("ip", "10.0.0.5") not in found  # internal relay

    tax = taxonomies(report)
    assert tax["Attachments"] == ("info", 3)
    assert tax["RiskyAttachments"] == ("suspicious", 1)
    assert tax["SPF"] == ("suspicious", "fail")
    assert tax["DMARC"] == ("suspicious", "fail")
    assert "DKIM" not in tax
    assert tax["ReplyTo"] == ("suspicious", "differs from From")
    assert tax["DeceptiveLinks"] == ("suspicious", 1)

    files = [a for a in report["artifacts"] if a["dataType"] == "file"]
    assert sorted(a["filename"] for a in files) == ["invoice.pdf.exe", "notes.txt", "notes.txt"]
    contents = {(job.output_dir / a["file"]).read_bytes() for a in files}
    assert contents == {
        b"MZ\x90\x00fake executable",
        b"contact 91.215.85.17 for details\n",
        b"second file with the same name",
    }
    for artifact in files:
        assert "/" not in artifact["file"]
    meta = {a["filename"]: a for a in full["email"]["attachments"]}
    assert meta["invoice.pdf.exe"]["executable"] is True
    assert meta["invoice.pdf.exe"]["sha256"] == hashlib.sha256(b"MZ\x90\x00fake executable").hexdigest()
    # The report is plain JSON: no payload bytes leak into it.
    assert "_payloads" not in json.dumps(full)


def test_eml_detected_by_content(make_job):
    raw = build_phish()
    report = make_job(
        FLAVOR, "file", file_bytes=raw, filename="attachment", content_type="application/octet-stream"
    ).run()
    assert report["full"]["source"] == "email"


def test_broken_eml_does_not_crash(make_job):
    raw = build_phish()
    truncated = raw[: len(raw) * 2 // 3] + b"\x00\xff garbage"
    report = make_job(FLAVOR, "file", file_bytes=truncated, filename="broken.eml").run()
    assert report["success"] is True
    assert ("mail", "security@bank.example.com") in artifact_set(report)


def test_missing_input_file(make_job):
    job = make_job(FLAVOR, "file", file_bytes=b"x", filename="x.txt")
    (job.directory / "input" / "attachment4711").unlink()
    report = job.run()
    assert report["success"] is False
    assert "missing" in report["errorMessage"]
