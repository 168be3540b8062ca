"""Validators for host-side observables: file names, URI paths, user agents, registry keys, CVE ids."""

import re
import urllib.parse

from filenames import WINDOWS_DEVICE_NAMES, extensions, is_executable_name, lure_findings
from verdict import Verdict, has_control_chars


def validate_filename(value: str) -> Verdict:
    verdict = Verdict(True, "file name")
    if not value.strip():
        return verdict.invalid("is empty")
    if "\x00" in value or has_control_chars(value):
        return verdict.invalid("contains control characters")
    # Analysts often paste a full path; the name is what the other checks are about.
    name = re.split(r"[\\/]", value)[-1]
    if name != value:
        verdict.details["directory"] = value[: len(value) - len(name)]
    if not name:
        return verdict.invalid("is a directory path without a file name")
    if len(name.encode("utf-8")) > 255:
        verdict.invalid("is longer than 255 bytes")
    verdict.normalized = name
    exts = extensions(name)
    verdict.details.update({"name": name, "extension": exts[-1] if exts else None, "extensions": exts})
    if is_executable_name(name):
        verdict.details["executable"] = True
        verdict.note("info", "Executable", f".{exts[-1]}")
    for predicate, finding in lure_findings(name):
        verdict.note("suspicious", predicate, finding)
    if name != name.rstrip(". "):
        verdict.note("suspicious", "TrailingDotOrSpace", "Windows silently drops it")
    if name.split(".")[0].lower() in WINDOWS_DEVICE_NAMES:
        verdict.note("suspicious", "DeviceName", name.split(".")[0].upper())
    return verdict


_TRAVERSAL = re.compile(r"(?:^|[\\/])\.\.(?:[\\/]|$)")


def validate_uri_path(value: str) -> Verdict:
    verdict = Verdict(True, "URI path")
    text = value.strip()
    if not text:
        return verdict.invalid("is empty")
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", text):
        parts = urllib.parse.urlsplit(text)
        verdict.normalized = parts.path + (f"?{parts.query}" if parts.query else "")
        return verdict.invalid("is a full URL, not a path")
    if has_control_chars(text) or " " in text:
        verdict.invalid("contains spaces or control characters (they must be percent-encoded)")
    path, _, query = text.partition("?")
    # Decode twice: double encoding (%252e%252e) is the usual way to slip "../" past filters.
    decoded = urllib.parse.unquote(urllib.parse.unquote(path))
    verdict.normalized = text
    verdict.details.update(
        {
            "path": path,
            "decoded_path": decoded,
            "query_parameters": [k for k, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)],
            "extension": (extensions(path.rsplit("/", 1)[-1]) or [None])[-1],
        }
    )
    if not path.startswith("/"):
        verdict.note("info", "Relative", "does not start with '/'")
    if _TRAVERSAL.search(decoded):
        verdict.note("suspicious", "Traversal", "../")
    if "\x00" in decoded:
        verdict.note("suspicious", "NullByte", "%00")
    return verdict


# Order matters: the first matching family wins, and tools often append a browser-like token.
_UA_FAMILIES = [
    (
        "scanner",
        "suspicious",
        r"sqlmap|nikto|nmap|masscan|zgrab|nuclei|wpscan|acunetix|nessus|openvas|"
        r"dirbuster|gobuster|feroxbuster|ffuf|hydra|metasploit|havij|jaeles|whatweb|zmeu|commix|netsparker|qualys",
    ),
    (
        "script",
        "info",
        r"curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|okhttp|"
        r"libwww-perl|java/|apache-httpclient|powershell|winhttp|axios|node-fetch|ruby|php/|bitsadmin|certutil",
    ),
    ("bot", "info", r"bot\b|crawler|spider|slurp|bingpreview|facebookexternalhit"),
    ("browser", "info", r"firefox/|chrome/|safari/|edg/|opr/|msie |trident/"),
]
_UA_PRODUCT = re.compile(r"([A-Za-z][\w.\-]*)/([\w.\-]+)")


def validate_user_agent(value: str) -> Verdict:
    verdict = Verdict(True, "user agent")
    text = value.strip()
    if not text:
        return verdict.invalid("is empty")
    if has_control_chars(text):
        return verdict.invalid("contains control characters")
    verdict.normalized = re.sub(r"\s+", " ", text)
    verdict.details["products"] = [{"name": n, "version": v} for n, v in _UA_PRODUCT.findall(text)]
    verdict.details["comments"] = re.findall(r"\(([^)]*)\)", text)
    lowered = text.lower()
    for family, level, pattern in _UA_FAMILIES:
        match = re.search(pattern, lowered)
        if match:
            verdict.details["family"] = family
            verdict.details["client"] = match.group(0).rstrip("/ ")
            verdict.note(level, "Client", f"{family}:{verdict.details['client']}")
            break
    else:
        verdict.details["family"] = "unknown"
    if len(text) > 512:
        verdict.note("suspicious", "Length", len(text))
    if not text.isascii():
        verdict.note("suspicious", "NonASCII", "user agents are normally ASCII")
    return verdict


_HIVES = {
    "HKLM": "HKEY_LOCAL_MACHINE",
    "HKCU": "HKEY_CURRENT_USER",
    "HKCR": "HKEY_CLASSES_ROOT",
    "HKU": "HKEY_USERS",
    "HKCC": "HKEY_CURRENT_CONFIG",
    "HKPD": "HKEY_PERFORMANCE_DATA",
}
_PERSISTENCE = [
    ("Run", r"\\currentversion\\(?:policies\\explorer\\)?run(?:once)?(?:ex)?(?:\\|$)"),
    ("Services", r"\\currentcontrolset\\services\\"),
    ("Winlogon", r"\\currentversion\\winlogon(?:\\|$)"),
    ("ImageFileExecutionOptions", r"\\image file execution options\\"),
    ("AppInitDLLs", r"\\currentversion\\windows(?:\\appinit_dlls)?$"),
    ("ActiveSetup", r"\\active setup\\installed components\\"),
    ("SessionManager", r"\\control\\session manager(?:\\|$)"),
    ("SilentProcessExit", r"\\silentprocessexit\\"),
    (
        "ShellExtensions",
        r"\\explorer\\(?:shellserviceobjectdelayload|shellexecutehooks|browser helper objects)",
    ),
    ("LogonScript", r"^hkey_current_user\\environment(?:\\userinitmprlogonscript)?$"),
]


def validate_registry(value: str) -> Verdict:
    verdict = Verdict(True, "registry key")
    text = value.strip().replace("/", "\\")
    if not text:
        return verdict.invalid("is empty")
    if has_control_chars(text):
        return verdict.invalid("contains control characters")
    text = re.sub(r"\\{2,}", r"\\", text).rstrip("\\")
    hive, _, rest = text.partition("\\")
    full_hive = _HIVES.get(hive.upper(), hive.upper())
    if full_hive not in _HIVES.values():
        return verdict.invalid(f"does not start with a registry hive (got {hive!r})")
    verdict.normalized = full_hive + ("\\" + rest if rest else "")
    verdict.details.update({"hive": full_hive, "path": rest, "depth": len(rest.split("\\")) if rest else 0})
    lowered = verdict.normalized.lower()
    for name, pattern in _PERSISTENCE:
        if re.search(pattern, lowered):
            verdict.details["persistence"] = name
            verdict.note("suspicious", "Persistence", name)
            break
    return verdict


_CVE = re.compile(r"^CVE[-_ ](\d{4})[-_ ](\d{4,})$", re.IGNORECASE)


def validate_cve(value: str) -> Verdict:
    verdict = Verdict(True, "CVE identifier")
    match = _CVE.match(value.strip())
    if not match:
        return verdict.invalid("is not a CVE identifier (expected CVE-YYYY-NNNN)")
    year, number = match.groups()
    verdict.normalized = f"CVE-{year}-{number}"
    verdict.details = {"year": int(year), "number": int(number)}
    if int(year) < 1999:
        verdict.invalid("has a year before 1999, when CVE started")
    return verdict
