"""Builds small but well-formed PE32 images for the FileInfo tests."""

import struct

FILE_ALIGN = 0x200
SECTION_ALIGN = 0x1000


def build_pe(
    imports: dict[str, list[str]], *, timestamp: int = 1_700_000_000, dll: bool = False, packed: bool = False
) -> bytes:
    """A PE32 i386 image with a .text section, an import section and optionally a UPX-like RWX section."""
    sections = [(b".text", 0x60000020, b"\xc3" * 16)]
    if packed:
        sections.append((b"UPX1", 0xE0000040, bytes(range(256)) * 2))
    idata_rva = SECTION_ALIGN * (len(sections) + 1)
    sections.append((b".idata", 0x40000040, _import_section(imports, idata_rva)))

    headers_size = FILE_ALIGN
    dos = bytearray(0x80)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x80)
    characteristics = 0x0102 | (0x2000 if dll else 0)
    coff = struct.pack("<HHIIIHH", 0x14C, len(sections), timestamp, 0, 0, 224, characteristics)
    optional = bytearray(224)
    struct.pack_into("<HBB", optional, 0, 0x10B, 14, 0)
    struct.pack_into("<I", optional, 16, 0x1000)  # entry point
    struct.pack_into("<I", optional, 28, 0x400000)  # image base
    struct.pack_into("<II", optional, 32, SECTION_ALIGN, FILE_ALIGN)
    struct.pack_into("<I", optional, 56, SECTION_ALIGN * (len(sections) + 1))  # size of image
    struct.pack_into("<I", optional, 60, headers_size)
    struct.pack_into("<HH", optional, 68, 2, 0x0140)  # GUI, ASLR + DEP
    struct.pack_into("<I", optional, 92, 16)
    struct.pack_into("<II", optional, 96 + 8, idata_rva, 0x100)  # import directory

    table = bytearray()
    body = bytearray()
    for index, (name, flags, data) in enumerate(sections):
        raw = data + b"\x00" * (-len(data) % FILE_ALIGN)
        rva = SECTION_ALIGN * (index + 1)
        pointer = headers_size + len(body)
        table += struct.pack("<8sIIIIIIHHI", name, len(data), rva, len(raw), pointer, 0, 0, 0, 0, flags)
        body += raw
    header = bytes(dos) + b"PE\x00\x00" + coff + bytes(optional) + bytes(table)
    return header + b"\x00" * (headers_size - len(header)) + bytes(body)


def _import_section(imports: dict[str, list[str]], base: int) -> bytes:
    """Descriptors, then lookup tables, then names, laid out at RVA `base`."""
    descriptors_size = 20 * (len(imports) + 1)
    lookup_size = sum(4 * (len(funcs) + 1) for funcs in imports.values())
    strings = bytearray()
    string_base = base + descriptors_size + lookup_size

    def add_string(data: bytes) -> int:
        rva = string_base + len(strings)
        strings.extend(data + b"\x00")
        if len(strings) % 2:
            strings.append(0)
        return rva

    descriptors = bytearray()
    lookups = bytearray()
    for dll, functions in imports.items():
        lookup_rva = base + descriptors_size + len(lookups)
        name_rva = add_string(dll.encode())
        for function in functions:
            lookups += struct.pack("<I", add_string(b"\x00\x00" + function.encode()))
        lookups += b"\x00\x00\x00\x00"
        descriptors += struct.pack("<IIIII", lookup_rva, 0, 0, name_rva, lookup_rva)
    descriptors += b"\x00" * 20
    return bytes(descriptors + lookups + strings)
