#!/usr/bin/env python3
"""IOCExtractor: pull indicators out of text, binary files and e-mails (.eml), offline."""

import json
import os
import re
import tempfile

import eml
from cortexutils.analyzer import Analyzer
from extraction import IndicatorSet, add_host, extract
from network import validate_ip

NAMESPACE = "IOCExtractor"
DEFAULT_MAX_MB = 20  # enough for any mail; bounds memory and time (about 5 s for 20 MB of text)
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t]{5,}")
_UTF16_RUN = re.compile(rb"(?:[\x20-\x7e]\x00){5,}")
# Failed authentication results a receiving server records for spoofed or forged mail.
_AUTH_FAILURES = {"fail", "softfail", "permerror", "hardfail"}


def read_capped(path: str, limit: int) -> tuple[bytes, bool]:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    return data[:limit], len(data) > limit


def text_of(raw: bytes) -> tuple[str, str]:
    """(text, how it was obtained): decoded text, or the printable strings of a binary file."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace"), "utf-16"
    if b"\x00" not in raw[:8192]:
        return raw.decode("utf-8", errors="replace"), "text"
    # Binary: like strings(1), keep runs of printable ASCII and of UTF-16LE (Windows binaries, documents).
    ascii_runs = (m.group(0).decode("ascii") for m in _PRINTABLE_RUN.finditer(raw))
    wide_runs = (m.group(0).decode("utf-16-le") for m in _UTF16_RUN.finditer(raw))
    return "\n".join([*ascii_runs, *wide_runs]), "strings"


class IOCExtractor(Analyzer):
    def run(self):
        self._payloads = []
        observable = None
        if self.data_type == "file":
            path = self.get_param("file")
            if not path:
                self.error("The file to analyze is missing from the job's input directory.")
            report = self._analyze_file(path)
        else:
            observable = self.get_data()
            if not isinstance(observable, str):
                observable = json.dumps(observable, ensure_ascii=False)
            found = IndicatorSet(ignore={(self.data_type, observable), (self.data_type, observable.lower())})
            extract(observable, "the observable", found)
            report = {
                "source": "observable",
                "iocs": [i.as_dict() for i in found.items],
                "truncated": found.truncated,
            }
        report["counts"] = _counts(report["iocs"])
        # build_artifact() copies attachment files into output/ while report() runs, so they live until then.
        with tempfile.TemporaryDirectory(prefix="iocextractor-") as workdir:
            self._workdir = workdir
            self.report(report)

    def _analyze_file(self, path: str) -> dict:
        max_mb = self.get_param("config.max_size_mb", DEFAULT_MAX_MB)
        if not isinstance(max_mb, (int, float)) or max_mb <= 0:
            self.error(f"max_size_mb must be a positive number, got {max_mb!r}.")
        raw, truncated = read_capped(path, int(max_mb * 1024 * 1024))
        filename = self.get_param("filename", "") or ""
        content_type = self.get_param("contentType", "") or ""
        report = {"filename": filename, "bytesRead": len(raw), "truncated": truncated}
        found = IndicatorSet()
        mail = None
        if eml.looks_like_eml(raw, filename, content_type):
            try:
                mail = self._analyze_mail(raw, found)
            except Exception as exc:  # a hostile message must still get the plain-text treatment below
                report["emailError"] = f"{exc.__class__.__name__}: {exc}"
        if mail is not None:
            report["source"] = "email"
            report["email"] = mail
        else:
            text, method = text_of(raw)
            report["source"] = method
            extract(text, f"file {filename}" if filename else "file", found)
        report["iocs"] = [i.as_dict() for i in found.items]
        report["truncated"] = truncated or found.truncated
        return report

    def _analyze_mail(self, raw: bytes, found: IndicatorSet) -> dict:
        facts = eml.parse(raw)
        headers = facts["headers"]
        for field in ("from", "sender", "reply_to", "return_path", "to", "cc"):
            for address in headers[field]:
                found.add("mail", address, f"{field.replace('_', '-')} header")
                add_host(found, eml.domain_of(address), f"domain of the {field.replace('_', '-')} address")
        if headers["subject"]:
            found.add("mail_subject", headers["subject"], "subject header")
        for value in headers["x_originating_ip"]:
            verdict = validate_ip(value.strip("[] "))
            if verdict.valid:
                found.add("ip", verdict.normalized, "X-Originating-IP header")
        for hop in facts["received"]:
            for ip in hop["ips"]:
                verdict = validate_ip(ip)
                # Relays inside the sender's or our own network say nothing about the attacker.
                if verdict.valid and verdict.details["scope"] == "global":
                    found.add("ip", verdict.normalized, f"Received header (hop {hop['hop']})")
            if hop["from"]:
                add_host(found, hop["from"], f"Received header (hop {hop['hop']})")
        for context, text in facts.pop("_texts"):
            extract(text, context, found)
        for attachment in facts["attachments"]:
            found.add("filename", attachment["filename"], "attachment name")
            found.add("hash", attachment["sha256"], f"SHA-256 of attachment {attachment['filename']}")
        self._payloads = facts.pop("_payloads")
        return facts

    def summary(self, raw):
        taxonomies = [
            self.build_taxonomy("info", NAMESPACE, data_type, count)
            for data_type, count in raw["counts"].items()
        ]
        if not taxonomies:
            taxonomies.append(self.build_taxonomy("info", NAMESPACE, "IOCs", 0))
        mail = raw.get("email")
        if mail:
            taxonomies.extend(self._mail_taxonomies(mail))
        return {"taxonomies": taxonomies}

    def _mail_taxonomies(self, mail: dict) -> list[dict]:
        taxonomies = [self.build_taxonomy("info", NAMESPACE, "Attachments", len(mail["attachments"]))]
        risky = [a for a in mail["attachments"] if a["executable"] or a["lures"]]
        if risky:
            taxonomies.append(self.build_taxonomy("suspicious", NAMESPACE, "RiskyAttachments", len(risky)))
        for method, result in sorted(mail["authentication"].items()):
            if result in _AUTH_FAILURES:
                taxonomies.append(self.build_taxonomy("suspicious", NAMESPACE, method.upper(), result))
        if mail["reply_to_mismatch"]:
            taxonomies.append(self.build_taxonomy("suspicious", NAMESPACE, "ReplyTo", "differs from From"))
        mismatched = sum(1 for link in mail["links"] if link["mismatch"])
        if mismatched:
            taxonomies.append(self.build_taxonomy("suspicious", NAMESPACE, "DeceptiveLinks", mismatched))
        return taxonomies

    def artifacts(self, raw):
        # Extraction is this analyzer's whole purpose, so artifacts do not depend on auto_extract.
        artifacts = [self.build_artifact(i["dataType"], i["data"], message=i["context"]) for i in raw["iocs"]]
        for index, (name, payload) in enumerate(self._payloads):
            # One folder per attachment: two attachments may share a name, and the name is what TheHive shows.
            folder = os.path.join(self._workdir, str(index))
            path = os.path.join(folder, name)
            try:
                os.mkdir(folder)
                with open(path, "wb") as handle:
                    handle.write(payload)
            except OSError:
                continue  # an odd name the file system refuses; the attachment is still listed in the report
            artifact = self.build_artifact("file", path, message="attachment of the analyzed e-mail")
            if artifact:
                artifacts.append(artifact)
        return artifacts


def _counts(iocs: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ioc in iocs:
        counts[ioc["dataType"]] = counts.get(ioc["dataType"], 0) + 1
    return counts


if __name__ == "__main__":
    IOCExtractor().run()
