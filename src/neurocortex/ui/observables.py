"""A first guess of an observable's Cortex data type, for the New Analysis page (the analyst can change it)."""

from __future__ import annotations

import ipaddress
import re

DATA_TYPES = (
    "autonomous-system", "domain", "file", "filename", "fqdn", "hash", "ip", "mail", "mail_subject",
    "other", "regexp", "registry", "uri_path", "url", "user-agent",
)  # fmt: skip
HASH = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128}")
URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
MAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
HOSTNAME = re.compile(r"(?=.{1,253}$)(?:[a-zA-Z0-9_](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}\.?")
ASN = re.compile(r"AS\d{1,10}", re.IGNORECASE)
REGISTRY = re.compile(r"(HKLM|HKCU|HKEY_[A-Z_]+)\\", re.IGNORECASE)


def detect(value: str) -> str:
    value = value.strip()
    try:
        ipaddress.ip_address(value)
        return "ip"
    except ValueError:
        pass
    if HASH.fullmatch(value):
        return "hash"
    if URL.fullmatch(value):
        return "url"
    if MAIL.fullmatch(value):
        return "mail"
    if ASN.fullmatch(value):
        return "autonomous-system"
    if REGISTRY.match(value):
        return "registry"
    if HOSTNAME.fullmatch(value):
        # two labels (example.com) is a registered domain; more (www.example.com) a host name
        return "domain" if value.rstrip(".").count(".") == 1 else "fqdn"
    return "other"


def split_lines(text: str) -> list[str]:
    """Observables pasted one per line, blank lines and repeats dropped, in their order."""
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
