"""Find indicators of compromise (URLs, addresses, hashes, ...) in free text.

Each kind is searched in turn and its matches are blanked out before the next search, so that the host
of a URL is not reported again as a stray domain, a hash inside a URL is not a hash, and so on; the
parts worth reporting (a URL's host, an address's domain) are derived explicitly instead.
"""

import html
import re
from dataclasses import dataclass

from filenames import EXECUTABLE_EXTENSIONS
from hashes import KNOWN_VALUES
from network import host_data_type, validate_domain, validate_ip, validate_mail, validate_url
from refang import refang
from tlds import is_known_tld

MAX_INDICATORS = 5000

# Addresses in these scopes are placeholders or local plumbing, not indicators.
IGNORED_IP_SCOPES = {
    "unspecified",
    "loopback",
    "link-local",
    "multicast",
    "broadcast",
    "this-network",
    "documentation",
}

# TLDs that are also common file extensions: "setup.py" or "notes.md" in text is a file, not a domain.
FILE_LIKE_TLDS = {
    "py",
    "sh",
    "pl",
    "rs",
    "md",
    "ps",
    "so",
    "cc",
    "pm",
    "mk",
    "zip",
    "mov",
    "ai",
    "gz",
    "rar",
    "app",
}

# Name spaces that appear in every HTML or Office document and mean nothing.
NOISE_HOSTS = {
    "www.w3.org",
    "schemas.microsoft.com",
    "schemas.openxmlformats.org",
    "purl.org",
    "ns.adobe.com",
    "schema.org",
    "www.xfa.org",
}

_URL = re.compile(
    r"\b(?:https?|ftps?|sftp|wss?)://(?:\[[0-9A-Fa-f:.]+\])?[^\s<>\"'`{}|\\^\[\]]*",
    re.IGNORECASE,
)
_MAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z][A-Za-z0-9\-]{1,62}(?![\w\-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|(?:\d{1,3}\.){3}\d{1,3})(?![\w:])"
)
_HASH = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{128}|[0-9A-Fa-f]{64}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{32})(?![0-9A-Za-z])"
)
_REGISTRY = re.compile(
    r"\b(?:HKEY_LOCAL_MACHINE|HKEY_CURRENT_USER|HKEY_CLASSES_ROOT|HKEY_USERS|HKEY_CURRENT_CONFIG|HKLM|HKCU|HKCR|HKU)"
    r"\\[^\s\"'<>|*?]+"
)
_TEXT_FILE_EXTENSIONS = sorted(
    EXECUTABLE_EXTENSIONS - {"com", "url", "one", "app", "command"}, key=len, reverse=True
)
_FILENAME = re.compile(
    r"(?<![\w.\-])[\w\-]+(?:\.[\w\-]+)*\.(?:" + "|".join(_TEXT_FILE_EXTENSIONS) + r")(?![\w.\-])",
    re.IGNORECASE,
)
_DOMAIN = re.compile(
    r"(?<![\w@.\-])(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9\-]{1,59})(?![\w\-]|\.\w)",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\")]}>"


@dataclass(frozen=True)
class Indicator:
    data_type: str
    data: str
    context: str

    def as_dict(self) -> dict:
        return {"dataType": self.data_type, "data": self.data, "context": self.context}


class IndicatorSet:
    """Keeps indicators in first-seen order, once per (data type, value), up to a limit."""

    def __init__(self, ignore: set[tuple[str, str]] | None = None, limit: int = MAX_INDICATORS):
        self._seen = set(ignore or ())
        self.items: list[Indicator] = []
        self.limit = limit
        self.truncated = False

    def add(self, data_type: str, data: str, context: str) -> None:
        key = (data_type, data)
        if key in self._seen:
            return
        if len(self.items) >= self.limit:
            self.truncated = True
            return
        self._seen.add(key)
        self.items.append(Indicator(data_type, data, context))


def _strip_trailing(url: str) -> str:
    while url and url[-1] in _TRAILING:
        # Keep a closing parenthesis that belongs to the URL (Wikipedia-style links).
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def add_host(found: IndicatorSet, host: str, context: str) -> None:
    if not host or host in NOISE_HOSTS:
        return
    data_type = host_data_type(host)
    if data_type == "ip":
        verdict = validate_ip(host)
        if verdict.valid and verdict.details.get("scope") not in IGNORED_IP_SCOPES:
            found.add("ip", verdict.normalized, context)
        return
    if "." in host and is_known_tld(host.rsplit(".", 1)[-1]):
        found.add(data_type, host, context)


def extract(text: str, context: str, found: IndicatorSet) -> IndicatorSet:
    """Add the indicators found in `text` to `found`; `context` says where the text came from."""
    text = refang(text)
    if "&" in text and ("</" in text or "href=" in text.lower()):
        text = html.unescape(text)

    def take(pattern, handle):
        def replace(match):
            handle(match)
            return " " * (match.end() - match.start())

        return pattern.sub(replace, text)

    def on_url(match):
        url = _strip_trailing(match.group(0))
        verdict = validate_url(url)
        if verdict.valid and verdict.details.get("host") not in NOISE_HOSTS:
            found.add("url", verdict.normalized, context)
            add_host(found, verdict.details["host"], f"host of a URL in {context}")

    def on_mail(match):
        verdict = validate_mail(match.group(0))
        if verdict.valid:
            found.add("mail", verdict.normalized.lower(), context)
            add_host(found, verdict.details["domain"], f"domain of an e-mail address in {context}")

    def on_ip(match):
        verdict = validate_ip(match.group(0))
        if verdict.valid and verdict.details["scope"] not in IGNORED_IP_SCOPES:
            found.add("ip", verdict.normalized, context)

    def on_hash(match):
        value = match.group(0).lower()
        # Long runs of digits are numbers and "0000…" is padding; neither is worth pivoting on.
        if not value.isdigit() and len(set(value)) > 4 and value not in KNOWN_VALUES:
            found.add("hash", value, context)

    def on_registry(match):
        found.add("registry", match.group(0).rstrip(".,;:)\"'"), context)

    def on_filename(match):
        name = match.group(0)
        labels = name.split(".")
        # "www.example.run" is a domain; "setup.run" or "payload.exe" is a file.
        if len(labels) > 2 and is_known_tld(labels[-1]):
            return
        found.add("filename", name, context)

    def on_domain(match):
        name = match.group(0).lower()
        labels = name.split(".")
        tld = labels[-1]
        if not is_known_tld(tld) or (len(labels) == 2 and tld in FILE_LIKE_TLDS):
            return
        if validate_domain(name).valid and name not in NOISE_HOSTS:
            found.add(host_data_type(name), name, context)

    for pattern, handle in (
        (_URL, on_url),
        (_MAIL, on_mail),
        (_IPV4, on_ip),
        (_IPV6, on_ip),
        (_HASH, on_hash),
        (_REGISTRY, on_registry),
        (_FILENAME, on_filename),
        (_DOMAIN, on_domain),
    ):
        text = take(pattern, handle)
    return found
