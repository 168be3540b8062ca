"""Active content in documents: PDF keywords, OLE2 (legacy Office, MSI, Outlook) streams, RTF objects."""

import re

# PDF names that make a document do something on its own; counted the way pdfid does.
PDF_KEYWORDS = (
    "JavaScript",
    "JS",
    "OpenAction",
    "AA",
    "Launch",
    "EmbeddedFile",
    "RichMedia",
    "XFA",
    "AcroForm",
    "URI",
    "SubmitForm",
    "ObjStm",
    "Encrypt",
)
PDF_ACTIVE = {"JavaScript", "JS", "Launch", "EmbeddedFile", "RichMedia", "XFA", "SubmitForm"}
_PDF_NAME = re.compile(rb"/((?:[A-Za-z0-9]|#[0-9A-Fa-f]{2})+)")
_PDF_HEX_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")

# Directory entry names of OLE2 streams, as they appear (UTF-16LE) in the file.
_OLE_STREAMS = {
    "WordDocument": "Word 97-2003 document",
    "Workbook": "Excel 97-2003 workbook",
    "Book": "Excel 5 workbook",
    "PowerPoint Document": "PowerPoint 97-2003 presentation",
    "__substg1.0_": "Outlook message (.msg)",
    "EncryptedPackage": "password-protected Office document",
    "VisioDocument": "Visio drawing",
}
_OLE_MACROS = ("_VBA_PROJECT", "VBA", "Macros", "PROJECTwm")
_OLE_EMBEDDED = ("Ole10Native", "ObjectPool", "\x01Ole10Native")
_MSI_CLSID = bytes.fromhex("84100c0000000000c000000000000046")
_RTF_CONTROL = re.compile(rb"\\(objdata|objupdate|object|objemb|objlink|objautlink|objocx|objclass)\b")
_RTF_EQUATION = re.compile(rb"equation\.3|equation\.dsmt", re.IGNORECASE)


def pdf_keywords(data: bytes) -> dict:
    counts = dict.fromkeys(PDF_KEYWORDS, 0)
    obfuscated = 0
    for match in _PDF_NAME.finditer(data):
        raw = match.group(1)
        name = raw
        if b"#" in raw:
            name = _PDF_HEX_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
        text = name.decode("latin-1")
        if text in counts:
            counts[text] += 1
            # "/J#61vaScript" hides a keyword from naive scanners; nobody writes it that way innocently.
            obfuscated += raw != name
    version = re.search(rb"%PDF-(\d\.\d)", data[:1024])
    return {
        "version": version.group(1).decode() if version else None,
        "pages": len(_PDF_PAGE.findall(data)),
        "keywords": {k: v for k, v in counts.items() if v},
        "obfuscatedNames": obfuscated,
        "active": sorted(k for k in PDF_ACTIVE if counts[k]),
    }


def ole2_streams(data: bytes) -> dict:
    def present(name: str) -> bool:
        return name.encode("utf-16-le") in data

    kinds = [label for name, label in _OLE_STREAMS.items() if present(name)]
    is_msi = _MSI_CLSID in data[: 1 << 20]
    return {
        "kind": "Windows Installer package (MSI)"
        if is_msi
        else (kinds[0] if kinds else "OLE2 compound file"),
        "macros": any(present(name) for name in _OLE_MACROS),
        "embeddedObjects": any(present(name) for name in _OLE_EMBEDDED),
        "encrypted": present("EncryptedPackage"),
        "msi": is_msi,
    }


def rtf_objects(data: bytes) -> dict:
    controls = [m.group(1).decode() for m in _RTF_CONTROL.finditer(data)]
    return {
        "objects": controls.count("object"),
        "objectData": controls.count("objdata"),
        "autoUpdate": "objupdate" in controls,
        # Equation Editor objects are the carrier of CVE-2017-11882 and its kin.
        "equationEditor": bool(_RTF_EQUATION.search(data)),
    }
