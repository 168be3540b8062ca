"""Read an RFC 822 message (.eml) with the standard `email` package: headers, bodies, links, attachments."""

import email
import email.policy
import email.utils
import hashlib
import re
import urllib.parse
from html.parser import HTMLParser

from filenames import is_executable_name, lure_findings

MAX_ATTACHMENTS = 200

_HEADER_LINE = re.compile(rb"^[A-Za-z0-9-]{2,64}:")
_MAIL_HEADERS = {
    b"received",
    b"return-path",
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"delivered-to",
    b"reply-to",
    b"content-type",
    b"x-mailer",
    b"dkim-signature",
    b"authentication-results",
}
_AUTH_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)
_RECEIVED_FROM = re.compile(r"^\s*from\s+([^\s(;]+)", re.IGNORECASE)
_BRACKETED_IP = re.compile(r"[\[(]((?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+)[\])]")


def looks_like_eml(raw: bytes, filename: str = "", content_type: str = "") -> bool:
    """True for .eml files and for anything whose first lines are mostly well-known mail headers."""
    if filename.lower().endswith(".eml") or content_type.lower() == "message/rfc822":
        return True
    known = 0
    for line in raw[:8192].splitlines()[:40]:
        if not line.strip():
            break
        if _HEADER_LINE.match(line):
            known += line.split(b":", 1)[0].lower() in _MAIL_HEADERS
        elif not line[:1].isspace():
            return False
    return known >= 3


def _values(msg, name: str) -> list[str]:
    try:
        return [str(v) for v in msg.get_all(name, [])]
    except Exception:
        # A header the modern policy cannot parse: fall back to the raw text rather than lose it.
        return [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]


def addresses(msg, name: str) -> list[str]:
    return [addr.lower() for _, addr in email.utils.getaddresses(_values(msg, name)) if "@" in addr]


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip("<>").lower() if "@" in address else ""


class _LinkCollector(HTMLParser):
    """Collects <a href> links with their visible text, to spot text that shows one site and links to another."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self._open = {"href": href.strip(), "text": ""}
            self.links.append(self._open)

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None


def _host(url: str) -> str:
    try:
        return (urllib.parse.urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""


def html_links(markup: str) -> list[dict]:
    collector = _LinkCollector()
    try:
        collector.feed(markup)
        collector.close()
    except Exception:
        pass  # a truncated or broken document still yields the links seen so far
    links = []
    for link in collector.links:
        text = " ".join(link["text"].split())
        href_host = _host(link["href"])
        shown = text if "://" in text else f"http://{text}"
        shown_host = _host(shown) if re.match(r"^(?:https?://)?[\w\-]+(?:\.[\w\-]+)+(?:/\S*)?$", text) else ""
        links.append(
            {
                "href": link["href"],
                "text": text[:200],
                # The visible text names a site, and the link goes somewhere else: the classic phishing lure.
                "mismatch": bool(shown_host and href_host and shown_host != href_host),
            }
        )
    return links


def _safe_name(name: str | None, index: int) -> str:
    name = (name or "").replace("\x00", "")
    name = re.split(r"[\\/]", name)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:200] if name and name not in (".", "..") else f"attachment-{index}.bin"


def _decoded_text(part) -> str:
    try:
        return part.get_content()
    except Exception:
        # Unknown or misspelt charsets are common in spam; UTF-8 with replacement still shows the URLs.
        payload = part.get_payload(decode=True) or b""
        try:
            return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")


def parse(raw: bytes) -> dict:
    """Facts about the message; attachment payloads are returned under "_payloads" (not JSON)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    from_addrs = addresses(msg, "From")
    reply_to = addresses(msg, "Reply-To")
    facts = {
        "headers": {
            "subject": " ".join(" ".join(_values(msg, "Subject")).split()),
            "from": from_addrs,
            "sender": addresses(msg, "Sender"),
            "to": addresses(msg, "To"),
            "cc": addresses(msg, "Cc"),
            "reply_to": reply_to,
            "return_path": addresses(msg, "Return-Path"),
            "date": " ".join(_values(msg, "Date")) or None,
            "message_id": " ".join(_values(msg, "Message-ID")) or None,
            "x_mailer": " ".join(_values(msg, "X-Mailer") + _values(msg, "User-Agent")) or None,
            "x_originating_ip": _values(msg, "X-Originating-IP") + _values(msg, "X-Sender-IP"),
        },
        "authentication": _authentication(msg),
        "received": _received(msg),
        "bodies": [],
        "links": [],
        "attachments": [],
        "defects": len(msg.defects),
        "_texts": [],
        "_payloads": [],
    }
    from_domains = {domain_of(a) for a in from_addrs}
    facts["reply_to_mismatch"] = bool(reply_to) and not {domain_of(a) for a in reply_to} <= from_domains

    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            continue
        filename = part.get_filename()
        content_type = part.get_content_type()
        if filename or part.get_content_disposition() == "attachment":
            _attachment(facts, part, _safe_name(filename, index), content_type)
        elif content_type in ("text/plain", "text/html"):
            text = _decoded_text(part)
            facts["bodies"].append({"contentType": content_type, "length": len(text)})
            facts["_texts"].append((f"{content_type} body", text))
            if content_type == "text/html":
                facts["links"].extend(html_links(text))
    return facts


def _attachment(facts: dict, part, name: str, content_type: str) -> None:
    if len(facts["attachments"]) >= MAX_ATTACHMENTS:
        facts["attachments_truncated"] = True
        return
    try:
        payload = part.get_payload(decode=True)
        if payload is None and content_type == "message/rfc822":
            payload = part.get_payload(0).as_bytes()
    except Exception:
        payload = None
    payload = payload or b""
    meta = {
        "filename": name,
        "contentType": content_type,
        "size": len(payload),
        "md5": hashlib.md5(payload).hexdigest(),
        "sha1": hashlib.sha1(payload).hexdigest(),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "executable": is_executable_name(name),
        "lures": [f"{predicate}: {value}" for predicate, value in lure_findings(name)],
    }
    facts["attachments"].append(meta)
    facts["_payloads"].append((name, payload))
    if content_type.startswith("text/"):
        facts["_texts"].append((f"attachment {name}", payload.decode("utf-8", errors="replace")))


def _authentication(msg) -> dict:
    results = {}
    for header in ("Authentication-Results", "ARC-Authentication-Results"):
        for value in _values(msg, header):
            for method, result in _AUTH_RESULT.findall(value):
                results.setdefault(method.lower(), result.lower())
    for value in _values(msg, "Received-SPF"):
        if value.split():
            results.setdefault("spf", value.split()[0].lower())
    return results


def _received(msg) -> list[dict]:
    hops = []
    # Received headers are prepended by each relay, so the last one is the hop closest to the sender.
    for number, value in enumerate(reversed(_values(msg, "Received")), start=1):
        sender = _RECEIVED_FROM.match(value)
        hops.append(
            {
                "hop": number,
                "from": sender.group(1).strip("[]").lower() if sender else None,
                "ips": _BRACKETED_IP.findall(value),
                "raw": " ".join(value.split())[:500],
            }
        )
    return hops
