"""Header facts of Windows PE files (EXE/DLL/SYS), read with struct: no pefile needed."""

import datetime
import hashlib
import struct

from entropy import shannon

MACHINES = {
    0x14C: "i386",
    0x8664: "AMD64",
    0x1C0: "ARM",
    0x1C4: "ARMv7 Thumb-2",
    0xAA64: "ARM64",
    0x200: "IA-64",
    0xEBC: "EFI byte code",
}
SUBSYSTEMS = {
    1: "native",
    2: "Windows GUI",
    3: "Windows console",
    9: "Windows CE",
    10: "EFI application",
    11: "EFI boot driver",
    12: "EFI runtime driver",
    14: "Xbox",
    16: "Windows boot application",
}
# Section names left behind by well-known packers and protectors.
PACKER_SECTIONS = {
    "UPX0": "UPX",
    "UPX1": "UPX",
    "UPX2": "UPX",
    ".aspack": "ASPack",
    ".adata": "ASPack",
    ".MPRESS1": "MPRESS",
    ".MPRESS2": "MPRESS",
    ".petite": "Petite",
    ".nsp0": "NsPack",
    ".nsp1": "NsPack",
    ".themida": "Themida",
    ".vmp0": "VMProtect",
    ".vmp1": "VMProtect",
    ".enigma1": "Enigma",
    "PEC2": "PECompact",
    "pec1": "PECompact",
    ".packed": "generic packer",
    ".kkrunch": "kkrunchy",
    "MEW": "MEW",
    "FSG!": "FSG",
}
MAX_IMPORTED_DLLS = 256
MAX_IMPORTED_FUNCTIONS = 8192
MAX_SECTION_READ = 16 * 1024 * 1024

_IMAGE_FILE_DLL = 0x2000
_SCN_EXECUTE = 0x20000000
_SCN_WRITE = 0x80000000


class _Image:
    """A PE file opened for random access, mapping RVAs to file offsets through the section table."""

    def __init__(self, handle, sections):
        self.handle = handle
        self.sections = sections

    def offset(self, rva: int) -> int | None:
        for s in self.sections:
            if s["virtualAddress"] <= rva < s["virtualAddress"] + max(s["virtualSize"], s["rawSize"]):
                return s["rawPointer"] + rva - s["virtualAddress"]
        return None

    def read(self, rva: int, size: int) -> bytes:
        offset = self.offset(rva)
        if offset is None:
            return b""
        self.handle.seek(offset)
        return self.handle.read(size)

    def string(self, rva: int, limit: int = 256) -> str:
        raw = self.read(rva, limit).split(b"\x00", 1)[0]
        return raw.decode("ascii", errors="replace")


def parse(handle) -> dict | None:
    """Facts about the PE image in an open binary file, or None when it is a plain MS-DOS program."""
    handle.seek(0)
    dos = handle.read(64)
    if len(dos) < 64:
        return None
    (pe_offset,) = struct.unpack_from("<I", dos, 0x3C)
    handle.seek(pe_offset)
    header = handle.read(24)
    if len(header) < 24 or header[:4] != b"PE\x00\x00":
        return None
    machine, section_count, timestamp, _, _, optional_size, characteristics = struct.unpack_from(
        "<HHIIIHH", header, 4
    )
    optional = handle.read(optional_size)
    if len(optional) < 2:
        return None
    magic = struct.unpack_from("<H", optional, 0)[0]
    is64 = magic == 0x20B
    facts = {
        "format": "PE32+" if is64 else "PE32",
        "machine": MACHINES.get(machine, hex(machine)),
        "compiled": _timestamp(timestamp),
        "timestamp": timestamp,
        "dll": bool(characteristics & _IMAGE_FILE_DLL),
        "sectionCount": section_count,
    }
    directories = []
    if len(optional) >= (112 if is64 else 96):
        (entry,) = struct.unpack_from("<I", optional, 16)
        image_base = (
            struct.unpack_from("<Q", optional, 24)[0] if is64 else struct.unpack_from("<I", optional, 28)[0]
        )
        subsystem, dll_characteristics = struct.unpack_from("<HH", optional, 68)
        dir_offset = 112 if is64 else 96
        (dir_count,) = struct.unpack_from("<I", optional, dir_offset - 4)
        for index in range(min(dir_count, 16)):
            start = dir_offset + index * 8
            if start + 8 <= len(optional):
                directories.append(struct.unpack_from("<II", optional, start))
        facts.update(
            {
                "entryPoint": hex(entry),
                "imageBase": hex(image_base),
                "subsystem": SUBSYSTEMS.get(subsystem, str(subsystem)),
                "aslr": bool(dll_characteristics & 0x40),
                "dep": bool(dll_characteristics & 0x100),
            }
        )

    handle.seek(pe_offset + 24 + optional_size)
    sections = [_section(handle, handle.read(40)) for _ in range(min(section_count, 96))]
    sections = [s for s in sections if s is not None]
    for section in sections:
        handle.seek(section["rawPointer"])
        section["entropy"] = round(shannon(handle.read(min(section["rawSize"], MAX_SECTION_READ))), 3)
    facts["sections"] = sections
    facts["packers"] = sorted({PACKER_SECTIONS[s["name"]] for s in sections if s["name"] in PACKER_SECTIONS})
    facts["writableExecutableSections"] = [
        s["name"] for s in sections if "W" in s["flags"] and "X" in s["flags"]
    ]

    def directory(index):
        return directories[index] if index < len(directories) else (0, 0)

    facts["dotnet"] = directory(14) != (0, 0)
    # The security directory holds a file offset, not an RVA; presence is not validity (nothing is verified).
    facts["authenticodeSignature"] = directory(4)[1] > 0
    image = _Image(handle, sections)
    imports = _imports(image, directory(1)[0], is64) if directory(1)[0] else []
    facts["imports"] = [{"dll": dll, "functions": funcs} for dll, funcs in _grouped(imports)]
    facts["importCount"] = len(imports)
    facts["imphash"] = _imphash(imports) if imports else None
    return facts


def _timestamp(value: int) -> str:
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _section(handle, raw: bytes) -> dict | None:
    if len(raw) < 40:
        return None
    name, vsize, vaddr, rsize, rptr = struct.unpack_from("<8sIIII", raw, 0)
    (characteristics,) = struct.unpack_from("<I", raw, 36)
    flags = (
        "R" + ("W" if characteristics & _SCN_WRITE else "") + ("X" if characteristics & _SCN_EXECUTE else "")
    )
    return {
        "name": name.rstrip(b"\x00").decode("ascii", errors="replace"),
        "virtualAddress": vaddr,
        "virtualSize": vsize,
        "rawPointer": rptr,
        "rawSize": rsize,
        "flags": flags,
    }


def _imports(image: _Image, table_rva: int, is64: bool) -> list[tuple[str, str]]:
    """(dll, function) pairs in table order; ordinal-only imports are named "ord<N>" as pefile does."""
    found = []
    thunk_size, ordinal_flag = (8, 1 << 63) if is64 else (4, 1 << 31)
    for index in range(MAX_IMPORTED_DLLS):
        descriptor = image.read(table_rva + index * 20, 20)
        if len(descriptor) < 20 or descriptor == b"\x00" * 20:
            break
        lookup, _, _, name_rva, first_thunk = struct.unpack("<IIIII", descriptor)
        dll = image.string(name_rva)
        if not dll:
            break
        thunk_rva = lookup or first_thunk
        for position in range(MAX_IMPORTED_FUNCTIONS):
            raw = image.read(thunk_rva + position * thunk_size, thunk_size)
            if len(raw) < thunk_size:
                break
            (value,) = struct.unpack("<Q" if is64 else "<I", raw)
            if value == 0:
                break
            if value & ordinal_flag:
                found.append((dll, f"ord{value & 0xFFFF}"))
            else:
                found.append((dll, image.string((value & 0x7FFFFFFF) + 2)))
            if len(found) >= MAX_IMPORTED_FUNCTIONS:
                return found
    return found


def _grouped(imports):
    groups: dict[str, list[str]] = {}
    for dll, function in imports:
        groups.setdefault(dll, []).append(function)
    return groups.items()


def _imphash(imports: list[tuple[str, str]]) -> str:
    """MD5 of "dll.function" pairs, lower-cased, the way pefile computes an imphash.

    pefile additionally resolves ordinals of ws2_32/wsock32/oleaut32 to names; this does not, so an
    imphash of a file importing those by ordinal differs from pefile's.
    """
    parts = []
    for dll, function in imports:
        base = dll.lower()
        stem, _, ext = base.rpartition(".")
        if stem and ext in ("dll", "ocx", "sys"):
            base = stem
        parts.append(f"{base}.{function.lower()}")
    return hashlib.md5(",".join(parts).encode()).hexdigest()
