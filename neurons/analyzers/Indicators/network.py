"""Validators for network observables: IP addresses and networks, domain names, URLs, e-mail addresses, ASNs."""

import email.utils
import ipaddress
import re
import unicodedata
import urllib.parse

from refang import refang
from tlds import is_known_tld, is_special_use
from verdict import Verdict, has_control_chars

_DOCUMENTATION = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_BENCHMARKING = ipaddress.ip_network("198.18.0.0/15")
_BROADCAST = ipaddress.ip_address("255.255.255.255")

# Schemes that are meaningless without a host part.
_HOST_SCHEMES = {"http", "https", "ftp", "ftps", "sftp", "ws", "wss", "smb", "ssh", "telnet", "ldap", "ldaps"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443, "ssh": 22}
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_LOCAL_PART = re.compile(r"^[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*$")
_HOST_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$")
_ASN = re.compile(r"^(?:as|asn)?\s*(\d+)$", re.IGNORECASE)


def ip_scope(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Where an address lives; the order matters because Python's flags overlap (e.g. 0/8 is "private")."""
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return ip_scope(addr.ipv4_mapped)
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if addr == _BROADCAST:
        return "broadcast"
    if addr.version == 4 and addr.packed[0] == 0:
        return "this-network"
    if any(addr in net for net in _DOCUMENTATION):
        return "documentation"
    if addr.version == 4 and addr in _SHARED:
        return "shared"
    if addr.version == 4 and addr in _BENCHMARKING:
        return "benchmarking"
    if addr.is_reserved:
        return "reserved"
    if addr.is_private:
        return "private"
    if addr.is_global:
        return "global"
    return "reserved"


def _ip_details(addr) -> dict:
    details = {"version": addr.version, "scope": ip_scope(addr), "reverse_pointer": addr.reverse_pointer}
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            details["ipv4_mapped"] = str(addr.ipv4_mapped)
        if addr.sixtofour is not None:
            details["6to4_ipv4"] = str(addr.sixtofour)
        if addr.teredo is not None:
            details["teredo_server"], details["teredo_client"] = (str(a) for a in addr.teredo)
    return details


def validate_ip(value: str) -> Verdict:
    text = refang(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "/" in text:
        return _validate_network(text)
    text, _, zone = text.partition("%")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        verdict = Verdict(False, "unknown")
        host_port = _HOST_PORT.match(text)
        if host_port and _is_ip(host_port.group(1)):
            verdict.normalized = host_port.group(1)
            verdict.details["port"] = int(host_port.group(2))
            return verdict.invalid(f"contains a port number (:{host_port.group(2)})")
        return verdict.invalid(str(exc))
    # The zone ("%eth0") is kept apart: Python's ipaddress mishandles scoped addresses in places.
    verdict = Verdict(
        True, f"IPv{addr.version} address", normalized=_canonical(addr), details=_ip_details(addr)
    )
    if zone and addr.version == 6:
        verdict.details["zone"] = zone
    elif zone:
        return verdict.invalid("has a zone index, which only IPv6 addresses can have")
    verdict.note("info", "Scope", verdict.details["scope"])
    return verdict


def _canonical(addr) -> str:
    # Older Pythons print "::ffff:c0a8:101"; the dotted form is what people search for.
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def _validate_network(text: str) -> Verdict:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        return Verdict(False, "unknown").invalid(str(exc))
    verdict = Verdict(True, f"IPv{net.version} network", normalized=str(net))
    verdict.details = {
        "version": net.version,
        "prefixlen": net.prefixlen,
        "num_addresses": net.num_addresses,
        "scope": ip_scope(net.network_address),
    }
    if str(net.network_address) != text.split("/", 1)[0]:
        verdict.note("info", "HostBits", "set")
    verdict.note("info", "Scope", verdict.details["scope"])
    return verdict


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


# Cyrillic and Greek letters that render like Latin ones: a label made only of them (and digits or
# hyphens) imitates a Latin name, e.g. "аррӏе" (all Cyrillic) for "apple".
_LATIN_LOOKALIKES = frozenset(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04bb\u0501\u051b\u051d\u04cf\u043a"
    "\u03bf\u03b1\u03bd\u03c1\u03b9\u03ba\u03c5"
)


def _imitates_latin(label: str) -> bool:
    letters = [ch for ch in label if ch.isalpha()]
    return bool(letters) and all(ch in _LATIN_LOOKALIKES for ch in letters)


def _scripts(label: str) -> set[str]:
    """Unicode scripts of the letters in a label; Han, Hiragana and Katakana mix legitimately."""
    scripts = set()
    for ch in label:
        if ch.isalpha():
            script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            scripts.add("CJK" if script in {"CJK", "HIRAGANA", "KATAKANA"} else script)
    return scripts


def validate_domain(value: str, data_type: str = "domain") -> Verdict:
    text = refang(value).strip()
    verdict = Verdict(True, "domain name")
    if _SCHEME.match(text):
        host = urllib.parse.urlsplit(text).hostname or ""
        verdict.normalized = host or None
        return verdict.invalid("is a URL, not a bare domain name")
    if "@" in text:
        verdict.normalized = text.rsplit("@", 1)[1].lower()
        return verdict.invalid("is an e-mail address, not a domain name")
    text = text.rstrip(".")
    if _is_ip(text.strip("[]")):
        verdict.normalized = text.strip("[]")
        return verdict.invalid("is an IP address, not a domain name")
    if not text:
        return verdict.invalid("is empty")
    if has_control_chars(text) or any(ch.isspace() for ch in text):
        return verdict.invalid("contains whitespace or control characters")

    if "" in text.split("."):
        return verdict.invalid("has an empty label (consecutive or leading dots)")
    wildcard = text.startswith("*.")
    if wildcard:
        text = text[2:]
        verdict.details["wildcard"] = True
    labels = []
    for label in text.split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(label.encode("idna").decode("ascii"))
        except UnicodeError:
            return verdict.invalid(f"has a label that is not a valid internationalised name: {label!r}")
    ascii_name = ".".join(labels)
    verdict.normalized = ("*." if wildcard else "") + ascii_name
    verdict.details.update({"labels": len(labels), "tld": labels[-1]})
    if len(ascii_name) > 253:
        verdict.invalid("is longer than 253 characters")
    bad = [label for label in labels if not _LABEL.match(label)]
    if bad:
        verdict.invalid(f"has invalid label(s): {', '.join(repr(b) for b in bad[:5])}")
    if len(labels) < 2 and data_type != "hostname":
        verdict.invalid("has no top-level domain")
    if labels[-1].isdigit():
        verdict.invalid("has an all-numeric top-level domain")
    if any("_" in label for label in labels):
        verdict.note("info", "Underscore", "not a valid host name, but valid in DNS (e.g. SRV records)")
    if not verdict.valid:
        return verdict

    verdict.kind = "domain name" if len(labels) == 2 else "fully qualified domain name"
    if len(labels) >= 2:
        _check_tld(verdict, labels[-1])
    _check_idn(verdict, labels)
    return verdict


def _check_tld(verdict: Verdict, tld: str) -> None:
    if is_special_use(tld):
        verdict.details["scope"] = "special-use"
        verdict.note("info", "Scope", "special-use")
    elif not is_known_tld(tld):
        verdict.details["scope"] = "unknown-tld"
        verdict.note("suspicious", "TLD", f"unknown .{tld}")
    else:
        verdict.details["scope"] = "public"


def _check_idn(verdict: Verdict, labels: list[str]) -> None:
    if not any(label.startswith("xn--") for label in labels):
        return
    unicode_labels = []
    for label in labels:
        try:
            unicode_labels.append(label.encode("ascii").decode("idna") if label.startswith("xn--") else label)
        except UnicodeError:
            verdict.note("suspicious", "IDN", f"undecodable punycode label {label}")
            return
    unicode_name = ".".join(unicode_labels)
    verdict.details["unicode"] = unicode_name
    verdict.note("info", "IDN", unicode_name)
    mixed = [label for label in unicode_labels if len(_scripts(label)) > 1 or _imitates_latin(label)]
    if mixed:
        verdict.details["mixed_scripts"] = {label: sorted(_scripts(label)) for label in mixed}
        verdict.note("suspicious", "Homograph", ", ".join(mixed))


def host_data_type(host: str) -> str:
    """The TheHive data type for a host name: cortexutils' convention is one dot = domain, more = fqdn."""
    if _is_ip(host):
        return "ip"
    return "domain" if host.count(".") == 1 else "fqdn"


def validate_url(value: str) -> Verdict:
    text = refang(value).strip()
    verdict = Verdict(True, "URL")
    if not text:
        return verdict.invalid("is empty")
    if not _SCHEME.match(text):
        if text.lower().startswith(("mailto:", "data:", "javascript:", "urn:")):
            verdict.kind = f"{text.split(':', 1)[0].lower()} URI"
            verdict.normalized = text
            return verdict
        first = re.split(r"[/?#]", text, maxsplit=1)[0]
        guess = validate_domain(first.rsplit(":", 1)[0]) if first else None
        if guess is not None and (guess.valid or _is_ip(first.rsplit(":", 1)[0])):
            verdict.normalized = "http://" + text
        return verdict.invalid("has no scheme (e.g. http://)")
    if has_control_chars(text) or any(ch.isspace() for ch in text):
        return verdict.invalid("contains whitespace or control characters")

    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    verdict.details.update(
        {"scheme": scheme, "path": parts.path, "query": parts.query, "fragment": parts.fragment}
    )
    try:
        port = parts.port
    except ValueError:
        return verdict.invalid("has an invalid port")
    host = parts.hostname or ""
    if not host:
        if scheme in _HOST_SCHEMES:
            return verdict.invalid("has no host")
        verdict.normalized = text
        return verdict

    host_verdict = _validate_host(host)
    verdict.details.update({"host": host_verdict.normalized or host, "host_type": host_data_type(host)})
    verdict.details["port"] = port
    if not host_verdict.valid:
        verdict.invalid(f"host {host!r} {'; '.join(host_verdict.problems)}")
    for level, predicate, note_value in host_verdict.notes:
        verdict.note(level, predicate, note_value)
    if parts.username is not None:
        verdict.details["userinfo"] = True
        # "https://bank.example@evil.example/" shows a trusted name where a user name belongs.
        verdict.note("suspicious", "UserInfo", parts.username)
    redirects = [v for _, v in urllib.parse.parse_qsl(parts.query) if _SCHEME.match(v)]
    if redirects:
        verdict.details["embedded_urls"] = redirects
        verdict.note("info", "EmbeddedURL", len(redirects))

    netloc = verdict.details["host"]
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.username is not None:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        netloc += f":{port}"
    verdict.normalized = urllib.parse.urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
    return verdict


def _validate_host(host: str) -> Verdict:
    if _is_ip(host):
        verdict = validate_ip(host)
        verdict.notes = [("info", "HostScope", verdict.details["scope"])]
        return verdict
    return validate_domain(host, "hostname")


def validate_mail(value: str) -> Verdict:
    text = refang(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:].split("?", 1)[0]
    display_name, address = email.utils.parseaddr(text)
    verdict = Verdict(True, "e-mail address")
    if not address or address.count("@") != 1:
        return verdict.invalid("is not an e-mail address (exactly one '@' expected)")
    local, domain = address.split("@")
    verdict.details.update({"local_part": local, "display_name": display_name or None})
    if not local or len(local) > 64 or not _LOCAL_PART.match(local):
        verdict.invalid("has an invalid local part")
    if "+" in local:
        verdict.details["subaddress"] = local.split("+", 1)[1]
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1].removeprefix("IPv6:")
        if not _is_ip(literal):
            verdict.invalid("has an invalid address literal")
        verdict.details["domain"] = domain
        verdict.normalized = f"{local}@{domain}"
        return verdict
    domain_verdict = validate_domain(domain)
    if not domain_verdict.valid:
        verdict.invalid(f"domain {domain!r} {'; '.join(domain_verdict.problems)}")
    verdict.notes.extend(domain_verdict.notes)
    verdict.details["domain"] = domain_verdict.normalized or domain.lower()
    verdict.normalized = f"{local}@{verdict.details['domain']}"
    return verdict


def validate_asn(value: str) -> Verdict:
    match = _ASN.match(value.strip())
    verdict = Verdict(True, "autonomous system number")
    if not match:
        return verdict.invalid("is not an AS number (expected e.g. AS64500)")
    number = int(match.group(1))
    if number > 0xFFFFFFFF:
        return verdict.invalid("is larger than 32 bits")
    if number in (0, 23456, 65535, 0xFFFFFFFF):
        scope = "reserved"
    elif 64496 <= number <= 64511 or 65536 <= number <= 65551:
        scope = "documentation"
    elif 64512 <= number <= 65534 or 4200000000 <= number <= 4294967294:
        scope = "private"
    else:
        scope = "public"
    verdict.normalized = f"AS{number}"
    verdict.details = {"number": number, "scope": scope, "bits": 16 if number <= 0xFFFF else 32}
    verdict.note("info", "Scope", scope)
    return verdict
