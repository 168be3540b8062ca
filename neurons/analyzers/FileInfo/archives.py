"""What is inside an archive: ZIP members (and what the ZIP really is: OOXML, JAR, APK, ODF), gzip, tar."""

import datetime
import re
import struct
import tarfile
import zipfile

from naming import EXECUTABLE_EXTENSIONS, extension_of

MAX_MEMBERS = 1000
MAX_SNIFFED = 200  # members whose first bytes are read to spot executables hiding under other names
BOMB_RATIO = 100
BOMB_SIZE = 1 << 30

_EXECUTABLE_MAGIC = (b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
_EXTERNAL_TARGET = re.compile(rb'<Relationship\b[^>]*?TargetMode="External"[^>]*>', re.IGNORECASE)
_ATTRIBUTE = re.compile(rb'(\w+)="([^"]*)"')


def inspect_zip(path: str) -> dict:
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # zipfile raises many kinds of errors on damaged or hostile archives
        return {"error": f"cannot read the ZIP directory: {exc}"}
    with archive:
        infos = archive.infolist()
        names = {info.filename for info in infos}
        members = []
        for position, info in enumerate(infos[:MAX_MEMBERS]):
            member = {
                "name": info.filename,
                "size": info.file_size,
                "compressedSize": info.compress_size,
                "encrypted": bool(info.flag_bits & 0x1),
                "modified": "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*info.date_time),
            }
            member["executable"] = _is_executable_member(archive, info, position)
            members.append(member)
        total = sum(info.file_size for info in infos)
        compressed = sum(info.compress_size for info in infos) or 1
        facts = {
            "memberCount": len(infos),
            "members": members,
            "membersTruncated": len(infos) > MAX_MEMBERS,
            "uncompressedSize": total,
            "encrypted": any(m["encrypted"] for m in members),
            "executables": [m["name"] for m in members if m["executable"]],
            # A tiny archive that expands a hundredfold to gigabytes is meant to exhaust scanners.
            "zipBomb": total > BOMB_SIZE and total / compressed > BOMB_RATIO,
            "container": _container(archive, names),
            "comment": archive.comment.decode("utf-8", "replace")[:500] or None,
        }
        if facts["container"] in ("docx", "xlsx", "pptx", "docm", "xlsm", "pptm"):
            facts["macros"] = any(name.lower().endswith("vbaproject.bin") for name in names)
            facts["externalRelationships"] = _external_relationships(archive, names)
        return facts


def _is_executable_member(archive, info, position: int) -> bool:
    if info.is_dir():
        return False
    if extension_of(info.filename) in EXECUTABLE_EXTENSIONS:
        return True
    if position >= MAX_SNIFFED or info.flag_bits & 0x1:
        return False
    try:
        with archive.open(info) as member:
            return member.read(4).startswith(_EXECUTABLE_MAGIC)
    except Exception:
        return False  # unsupported compression method or a damaged member


def _container(archive, names: set[str]) -> str:
    """The format built on top of ZIP, if any."""
    lowered = {n.lower() for n in names}
    if "[content_types].xml" in lowered:
        macro = any(n.endswith("vbaproject.bin") for n in lowered)
        for prefix, kind in (("word/", "doc"), ("xl/", "xls"), ("ppt/", "ppt")):
            if any(n.startswith(prefix) for n in lowered):
                return kind + ("m" if macro else "x")
        return "ooxml"
    if "androidmanifest.xml" in lowered and "classes.dex" in lowered:
        return "apk"
    if "meta-inf/manifest.mf" in lowered:
        return "jar"
    if "mimetype" in names:
        try:
            mimetype = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
        except Exception:
            mimetype = ""
        if mimetype.startswith("application/vnd.oasis.opendocument."):
            return "odf"
        if mimetype == "application/epub+zip":
            return "epub"
    return "zip"


def _external_relationships(archive, names: set[str]) -> list[dict]:
    """Targets outside the document; a remote template or OLE object is fetched when the file opens."""
    found = []
    for name in sorted(n for n in names if n.endswith(".rels"))[:200]:
        try:
            data = archive.read(name)[: 1 << 20]
        except Exception:
            continue
        for tag in _EXTERNAL_TARGET.findall(data):
            attributes = {k.decode(): v.decode("utf-8", "replace") for k, v in _ATTRIBUTE.findall(tag)}
            kind = attributes.get("Type", "").rsplit("/", 1)[-1]
            found.append({"part": name, "type": kind, "target": attributes.get("Target", "")})
    return found


def inspect_gzip(handle) -> dict:
    handle.seek(0)
    header = handle.read(10)
    if len(header) < 10:
        return {"error": "truncated gzip header"}
    flags, mtime = header[3], struct.unpack_from("<I", header, 4)[0]
    facts = {"modified": _date(mtime) if mtime else None, "originalName": None}
    if flags & 0x04:  # FEXTRA
        (extra_length,) = struct.unpack("<H", handle.read(2))
        handle.seek(extra_length, 1)
    if flags & 0x08:  # FNAME: the name of the compressed file, useful when it was renamed
        name = bytearray()
        while len(name) < 1024 and (byte := handle.read(1)) not in (b"", b"\x00"):
            name += byte
        facts["originalName"] = name.decode("latin-1")
    return facts


def inspect_tar(path: str) -> dict:
    members = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                if len(members) >= MAX_MEMBERS:
                    break
                members.append(
                    {"name": info.name, "size": info.size, "type": "dir" if info.isdir() else "file"}
                )
    except (tarfile.TarError, OSError, EOFError) as exc:
        if not members:
            return {"error": f"cannot list the tar archive: {exc}"}
    names = [m["name"] for m in members if m["type"] == "file"]
    return {
        "memberCount": len(members),
        "members": members,
        "executables": [n for n in names if extension_of(n) in EXECUTABLE_EXTENSIONS],
    }


def _date(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
