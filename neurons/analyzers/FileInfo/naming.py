"""What a file's name claims, to compare with what its content is."""

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


EXECUTABLE_EXTENSIONS = _words(
    """
    exe scr com pif bat cmd ps1 vbs vbe js jse wsf wsh hta msi lnk jar dll cpl sys ocx reg iso img vhd
    vhdx chm one xll apk
    """
)
DECOY_EXTENSIONS = _words(
    """
    pdf doc docx xls xlsx ppt pptx rtf txt csv jpg jpeg png gif bmp mp3 mp4 zip rar 7z html htm odt
    """
)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Declared extension -> family its content should belong to (families as in filetypes.FileType).
_FAMILY_EXTENSIONS = {
    "executable": "exe dll scr sys cpl ocx efi com",
    "document": "pdf doc docx docm xls xlsx xlsm ppt pptx pptm rtf odt ods odp msg",
    "archive": "zip rar 7z gz tgz bz2 xz tar cab iso",
    "image": "jpg jpeg png gif bmp tif tiff webp ico",
    "text": "txt log csv json xml md ini",
    "media": "mp3 mp4 wav avi mov ogg flac",
}
EXTENSION_FAMILIES = {ext: family for family, exts in _FAMILY_EXTENSIONS.items() for ext in exts.split()}


def extension_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip().lower() if "." in name else ""


def lure_findings(name: str) -> list[tuple[str, str]]:
    """(predicate, value) pairs for names built to hide what the file is."""
    findings = []
    parts = [p.strip().lower() for p in name.split(".")[1:]]
    if len(parts) >= 2 and parts[-1] in EXECUTABLE_EXTENSIONS and parts[-2] in DECOY_EXTENSIONS:
        findings.append(("DoubleExtension", f".{parts[-2]}.{parts[-1]}"))
    if any(ch in BIDI_CONTROLS for ch in name):
        findings.append(("BidiOverride", "present"))
    if re.search(r"\s{5,}\.", name):
        findings.append(("PaddedName", "whitespace hides the extension"))
    return findings
