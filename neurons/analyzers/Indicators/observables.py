"""Pick the validator for a TheHive data type, and guess the type of untyped ("other") values."""

import re

from endpoint import (
    validate_cve,
    validate_filename,
    validate_registry,
    validate_uri_path,
    validate_user_agent,
)
from hashes import identify
from network import host_data_type, validate_asn, validate_domain, validate_ip, validate_mail, validate_url
from refang import refang
from verdict import Verdict


def validate_hash(value: str) -> Verdict:
    found = identify(value)
    verdict = Verdict(True, "hash", normalized=found["normalized"])
    if not found["candidates"]:
        if not value.strip():
            return verdict.invalid("is empty")
        return verdict.invalid("has no known hash format (length or alphabet do not match any algorithm)")
    verdict.kind = found["candidates"][0]["id"]
    verdict.details = {"candidates": found["candidates"], "encoding": found["encoding"]}
    if found["known"]:
        verdict.details["known"] = found["known"]
        verdict.note("safe", "KnownHash", found["known"])
    return verdict


VALIDATORS = {
    "ip": validate_ip,
    "network": validate_ip,
    "domain": validate_domain,
    "fqdn": lambda v: validate_domain(v, "fqdn"),
    "hostname": lambda v: validate_domain(v, "hostname"),
    "url": validate_url,
    "mail": validate_mail,
    "email": validate_mail,
    "hash": validate_hash,
    "filename": validate_filename,
    "uri_path": validate_uri_path,
    "user-agent": validate_user_agent,
    "registry": validate_registry,
    "cve": validate_cve,
    "autonomous-system": validate_asn,
}

# Tried in order on values of unknown type; each test is cheap and the first that fits wins.
_GUESSES = [
    ("ip", lambda t: validate_ip(t)),
    ("url", lambda t: validate_url(t) if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", t) else None),
    ("mail", lambda t: validate_mail(t) if "@" in t else None),
    ("cve", lambda t: validate_cve(t)),
    ("hash", lambda t: validate_hash(t)),
    ("registry", lambda t: validate_registry(t) if t.upper().startswith("HK") else None),
    ("domain", lambda t: validate_domain(t) if "." in t and " " not in t else None),
    ("user-agent", lambda t: validate_user_agent(t) if re.match(r"^[\w.\-]+/\S+", t) and " " in t else None),
    ("uri_path", lambda t: validate_uri_path(t) if t.startswith("/") else None),
    ("filename", lambda t: validate_filename(t) if re.match(r"^[^\\/\s]+\.\w{1,8}$", t) else None),
]


def guess(value: str) -> tuple[str | None, Verdict]:
    """Return (TheHive data type, verdict) for a value of unknown type; (None, ...) when nothing fits."""
    text = refang(value).strip()
    for data_type, check in _GUESSES:
        verdict = check(text)
        if verdict is not None and verdict.valid:
            # A "domain" guess is only worth it when the TLD is real ("notes.txt" is not a domain).
            if data_type == "domain":
                if verdict.details.get("scope") == "unknown-tld":
                    continue
                data_type = host_data_type(verdict.normalized)
            return data_type, verdict
    return None, Verdict(False, "unknown", problems=["does not look like any known observable type"])


def validate(data_type: str, value: str) -> tuple[str | None, Verdict]:
    """Validate `value` as `data_type`; unknown data types (e.g. "other") are guessed."""
    validator = VALIDATORS.get(data_type)
    if validator is None:
        return guess(value)
    return data_type, validator(value)
