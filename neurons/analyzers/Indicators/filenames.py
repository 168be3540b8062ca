"""What makes a file name worth a second look: executable extensions, fake double extensions, bidi tricks."""

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Extensions Windows (or a common runtime) will execute or open with active content when double-clicked.
EXECUTABLE_EXTENSIONS = _words(
    """
    exe scr com pif bat cmd ps1 psm1 vbs vbe js jse wsf wsh hta msi msp mst lnk jar dll cpl sys ocx reg
    inf scf url iso img vhd vhdx appx msix appxbundle msixbundle application gadget chm one xll docm
    dotm xlsm xltm xlam pptm potm ppam sldm apk elf sh run bin command app
    """
)

# Extensions a lure pretends to have in front of the real one ("invoice.pdf.exe").
DECOY_EXTENSIONS = _words(
    """
    pdf doc docx xls xlsx ppt pptx rtf txt csv jpg jpeg png gif bmp mp3 mp4 avi mov zip rar 7z html htm
    odt
    """
)

# Bidirectional overrides can make "invoice\u202eexe.pdf" render as "invoicefdp.exe".
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")

WINDOWS_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)]
)

_PADDING = re.compile(r"\s{5,}|_{10,}")


def extensions(name: str) -> list[str]:
    """Lower-cased extensions, outermost last: "a.tar.gz" -> ["tar", "gz"]."""
    parts = name.strip().split(".")[1:]
    return [p.strip().lower() for p in parts if p.strip()]


def is_executable_name(name: str) -> bool:
    exts = extensions(name)
    return bool(exts) and exts[-1] in EXECUTABLE_EXTENSIONS


def lure_findings(name: str) -> list[tuple[str, str]]:
    """(predicate, value) pairs for tricks that disguise what a file really is."""
    findings = []
    exts = extensions(name)
    if len(exts) >= 2 and exts[-1] in EXECUTABLE_EXTENSIONS and exts[-2] in DECOY_EXTENSIONS:
        findings.append(("DoubleExtension", f".{exts[-2]}.{exts[-1]}"))
    if any(ch in BIDI_CONTROLS for ch in name):
        findings.append(("BidiOverride", "present"))
    if _PADDING.search(name):
        findings.append(("PaddedName", "whitespace or underscores hide the extension"))
    return findings
