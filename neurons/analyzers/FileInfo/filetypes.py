"""Tell what a file is from its first bytes (magic numbers), without libmagic."""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class FileType:
    key: str
    label: str
    mime: str
    family: str  # executable, script, document, archive, image, media, data, text
    extensions: tuple[str, ...] = ()


def _t(key, label, mime, family, *extensions):
    return FileType(key, label, mime, family, extensions)


PE = _t(
    "pe",
    "PE executable",
    "application/vnd.microsoft.portable-executable",
    "executable",
    "exe",
    "dll",
    "scr",
    "sys",
    "cpl",
    "ocx",
    "efi",
    "drv",
    "mui",
)
MSDOS = _t("msdos", "MS-DOS executable", "application/x-dosexec", "executable", "exe", "com")
ELF = _t("elf", "ELF binary", "application/x-elf", "executable", "so", "o", "ko", "elf", "bin", "")
MACHO = _t("macho", "Mach-O binary", "application/x-mach-binary", "executable", "dylib", "bundle", "")
JAVA_CLASS = _t("class", "Java class file", "application/java-vm", "executable", "class")
ZIP = _t("zip", "ZIP archive", "application/zip", "archive", "zip")
OLE2 = _t(
    "ole2",
    "OLE2 compound document",
    "application/x-ole-storage",
    "document",
    "doc",
    "xls",
    "ppt",
    "msg",
    "msi",
    "dot",
    "xlt",
    "pot",
    "pub",
    "vsd",
)
TEXT = _t("text", "text", "text/plain", "text", "txt", "log", "csv", "md", "ini", "cfg", "conf")

# (offset, magic, type); checked in order, so more specific signatures come first.
SIGNATURES = [
    (0, b"\x7fELF", ELF),
    (0, b"\xfe\xed\xfa\xce", MACHO),
    (0, b"\xfe\xed\xfa\xcf", MACHO),
    (0, b"\xce\xfa\xed\xfe", MACHO),
    (0, b"\xcf\xfa\xed\xfe", MACHO),
    (0, b"PK\x03\x04", ZIP),
    (0, b"PK\x05\x06", ZIP),
    (0, b"PK\x07\x08", ZIP),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE2),
    (0, b"{\\rt", _t("rtf", "Rich Text Format document", "application/rtf", "document", "rtf", "doc")),
    (0, b"\x89PNG\r\n\x1a\n", _t("png", "PNG image", "image/png", "image", "png")),
    (0, b"\xff\xd8\xff", _t("jpeg", "JPEG image", "image/jpeg", "image", "jpg", "jpeg", "jpe", "jfif")),
    (0, b"GIF87a", _t("gif", "GIF image", "image/gif", "image", "gif")),
    (0, b"GIF89a", _t("gif", "GIF image", "image/gif", "image", "gif")),
    (0, b"II*\x00", _t("tiff", "TIFF image", "image/tiff", "image", "tif", "tiff")),
    (0, b"MM\x00*", _t("tiff", "TIFF image", "image/tiff", "image", "tif", "tiff")),
    (0, b"\x00\x00\x01\x00", _t("ico", "Windows icon", "image/vnd.microsoft.icon", "image", "ico")),
    (0, b"ID3", _t("mp3", "MP3 audio", "audio/mpeg", "media", "mp3")),
    (0, b"OggS", _t("ogg", "Ogg media", "audio/ogg", "media", "ogg", "oga", "ogv", "opus")),
    (0, b"fLaC", _t("flac", "FLAC audio", "audio/flac", "media", "flac")),
    (0, b"\x1f\x8b", _t("gzip", "gzip compressed data", "application/gzip", "archive", "gz", "tgz")),
    (0, b"BZh", _t("bzip2", "bzip2 compressed data", "application/x-bzip2", "archive", "bz2", "tbz2")),
    (0, b"\xfd7zXZ\x00", _t("xz", "xz compressed data", "application/x-xz", "archive", "xz", "txz")),
    (0, b"(\xb5/\xfd", _t("zstd", "Zstandard compressed data", "application/zstd", "archive", "zst")),
    (0, b"7z\xbc\xaf'\x1c", _t("7z", "7-Zip archive", "application/x-7z-compressed", "archive", "7z")),
    (0, b"Rar!\x1a\x07", _t("rar", "RAR archive", "application/vnd.rar", "archive", "rar")),
    (
        0,
        b"MSCF",
        _t("cab", "Microsoft Cabinet archive", "application/vnd.ms-cab-compressed", "archive", "cab"),
    ),
    (
        0,
        b"!<arch>\n",
        _t("ar", "ar archive (e.g. Debian package)", "application/x-archive", "archive", "a", "deb", "lib"),
    ),
    (257, b"ustar", _t("tar", "tar archive", "application/x-tar", "archive", "tar")),
    (
        0x8001,
        b"CD001",
        _t("iso", "ISO 9660 disk image", "application/x-iso9660-image", "archive", "iso", "img"),
    ),
    (
        0,
        b"L\x00\x00\x00\x01\x14\x02\x00",
        _t("lnk", "Windows shortcut (LNK)", "application/x-ms-shortcut", "executable", "lnk"),
    ),
    (0, b"ITSF", _t("chm", "Compiled HTML Help (CHM)", "application/vnd.ms-htmlhelp", "executable", "chm")),
    (0, b"dex\n", _t("dex", "Android Dalvik executable", "application/vnd.android.dex", "executable", "dex")),
    (0, b"\x00asm", _t("wasm", "WebAssembly module", "application/wasm", "executable", "wasm")),
    (
        0,
        b"SQLite format 3\x00",
        _t("sqlite", "SQLite database", "application/vnd.sqlite3", "data", "sqlite", "db", "sqlite3"),
    ),
    (
        0,
        b"\xd4\xc3\xb2\xa1",
        _t("pcap", "pcap capture", "application/vnd.tcpdump.pcap", "data", "pcap", "cap"),
    ),
    (
        0,
        b"\xa1\xb2\xc3\xd4",
        _t("pcap", "pcap capture", "application/vnd.tcpdump.pcap", "data", "pcap", "cap"),
    ),
    (0, b"\x0a\x0d\x0d\x0a", _t("pcapng", "pcapng capture", "application/x-pcapng", "data", "pcapng")),
    (0, b"ElfFile\x00", _t("evtx", "Windows event log (EVTX)", "application/x-ms-evtx", "data", "evtx")),
    (0, b"regf", _t("regf", "Windows registry hive", "application/x-ms-registry", "data", "dat", "hiv", "")),
    (0, b"MZ", PE),  # refined into PE or MS-DOS by the PE parser
]

_PDF = _t("pdf", "PDF document", "application/pdf", "document", "pdf")
_SCRIPTS = {
    "ps1": ("PowerShell script", "text/x-powershell"),
    "psm1": ("PowerShell module", "text/x-powershell"),
    "vbs": ("VBScript", "text/vbscript"),
    "vbe": ("Encoded VBScript", "text/vbscript"),
    "js": ("JavaScript", "text/javascript"),
    "jse": ("Encoded JScript", "text/javascript"),
    "wsf": ("Windows Script File", "text/xml"),
    "hta": ("HTML Application", "application/hta"),
    "bat": ("batch file", "text/x-msdos-batch"),
    "cmd": ("batch file", "text/x-msdos-batch"),
    "py": ("Python script", "text/x-python"),
    "sh": ("shell script", "text/x-shellscript"),
    "php": ("PHP script", "text/x-php"),
}
_SHEBANG = re.compile(rb"^#!\s*(\S+)(?:\s+(\S+))?")


def looks_like_text(head: bytes) -> bool:
    if not head:
        return True
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for b in head if b < 0x20 and b not in (9, 10, 12, 13, 27))
    return controls / len(head) < 0.02


def detect(head: bytes, extension: str) -> FileType:
    """Best guess for a file starting with `head` (at least 64 KiB when the file is that big)."""
    for offset, magic, file_type in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return file_type
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) >= 8:
        # Java classes and universal Mach-O share this magic; Mach-O stores a small architecture count
        # where Java stores its version (>= 45).
        count = int.from_bytes(head[4:8], "big")
        return (
            _t("macho", "Mach-O universal binary", "application/x-mach-binary", "executable")
            if count < 45
            else JAVA_CLASS
        )
    if head[:4] == b"RIFF" and len(head) >= 12:
        kind = head[8:12]
        return {
            b"WEBP": _t("webp", "WebP image", "image/webp", "image", "webp"),
            b"WAVE": _t("wav", "WAVE audio", "audio/wav", "media", "wav"),
            b"AVI ": _t("avi", "AVI video", "video/x-msvideo", "media", "avi"),
        }.get(kind, _t("riff", "RIFF container", "application/octet-stream", "media"))
    if head[4:8] == b"ftyp":
        return _t(
            "mp4", "ISO media (MP4/MOV/HEIC)", "video/mp4", "media", "mp4", "m4a", "m4v", "mov", "heic", "3gp"
        )
    if b"%PDF-" in head[:1024]:
        return _PDF
    if looks_like_text(head[:8192]):
        return _detect_text(head, extension)
    return _t("data", "unknown binary data", "application/octet-stream", "data")


def _detect_text(head: bytes, extension: str) -> FileType:
    shebang = _SHEBANG.match(head)
    if shebang:
        interpreter = shebang.group(1).decode("ascii", "replace").rsplit("/", 1)[-1]
        if interpreter == "env" and shebang.group(2):
            interpreter = shebang.group(2).decode("ascii", "replace")
        return _t("script", f"{interpreter} script", "text/x-script", "script", "sh", "py", "pl", "rb", "")
    if extension in _SCRIPTS:
        label, mime = _SCRIPTS[extension]
        return _t("script", label, mime, "script", extension)
    sample = head[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if sample.startswith(b"-----begin "):
        return _t(
            "pem",
            "PEM-encoded key or certificate",
            "application/x-pem-file",
            "text",
            "pem",
            "crt",
            "cer",
            "key",
        )
    if sample.startswith(b"<?xml") or sample.startswith(b"<svg"):
        if b"<svg" in sample:
            return _t("svg", "SVG image", "image/svg+xml", "image", "svg")
        return _t("xml", "XML document", "application/xml", "text", "xml")
    if sample.startswith((b"<!doctype html", b"<html")) or b"<html" in sample[:1024]:
        return _t("html", "HTML document", "text/html", "text", "html", "htm", "hta")
    if sample[:1] in (b"{", b"["):
        return _t("json", "JSON or JavaScript text", "application/json", "text", "json", "js")
    return TEXT
