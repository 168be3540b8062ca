"""Header facts of ELF and Mach-O binaries."""

import struct

ELF_MACHINES = {
    2: "SPARC",
    3: "x86",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "S390",
    40: "ARM",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
    258: "LoongArch",
}
ELF_TYPES = {1: "relocatable", 2: "executable", 3: "shared object or PIE executable", 4: "core dump"}
ELF_OSABI = {0: "System V", 3: "Linux", 6: "Solaris", 9: "FreeBSD", 12: "OpenBSD"}
_PT_INTERP = 3

MACHO_CPUS = {
    7: "x86",
    0x01000007: "x86-64",
    12: "ARM",
    0x0100000C: "ARM64",
    18: "PowerPC",
    0x01000012: "PowerPC64",
}
MACHO_TYPES = {
    1: "object",
    2: "executable",
    6: "dynamic library",
    7: "dynamic linker",
    8: "bundle",
    11: "kernel extension",
}


def parse_elf(handle) -> dict:
    handle.seek(0)
    ident = handle.read(64)
    if len(ident) < 52:
        return {"error": "truncated ELF header"}
    bits = 64 if ident[4] == 2 else 32
    order = "<" if ident[5] == 1 else ">"
    file_type, machine = struct.unpack_from(order + "HH", ident, 16)
    if bits == 64:
        entry, phoff = struct.unpack_from(order + "QQ", ident, 24)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
    else:
        entry, phoff = struct.unpack_from(order + "II", ident, 24)
        phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
    facts = {
        "class": f"ELF{bits}",
        "endianness": "little" if order == "<" else "big",
        "osabi": ELF_OSABI.get(ident[7], str(ident[7])),
        "type": ELF_TYPES.get(file_type, str(file_type)),
        "machine": ELF_MACHINES.get(machine, str(machine)),
        "entryPoint": hex(entry),
        "interpreter": None,
    }
    # A program interpreter means dynamic linking; static binaries (common for malware droppers) have none.
    for index in range(min(phnum, 128)):
        handle.seek(phoff + index * phentsize)
        header = handle.read(phentsize)
        if len(header) < (56 if bits == 64 else 32):
            break
        if struct.unpack_from(order + "I", header, 0)[0] != _PT_INTERP:
            continue
        if bits == 64:
            (offset,), (size,) = (
                struct.unpack_from(order + "Q", header, 8),
                struct.unpack_from(order + "Q", header, 32),
            )
        else:
            (offset,), (size,) = (
                struct.unpack_from(order + "I", header, 4),
                struct.unpack_from(order + "I", header, 16),
            )
        handle.seek(offset)
        facts["interpreter"] = handle.read(min(size, 256)).split(b"\x00", 1)[0].decode("ascii", "replace")
        break
    facts["staticallyLinked"] = facts["interpreter"] is None and file_type == 2
    return facts


def parse_macho(head: bytes) -> dict:
    magic = head[:4]
    if magic == b"\xca\xfe\xba\xbe":
        count = min(struct.unpack_from(">I", head, 4)[0], 16, (len(head) - 8) // 20)
        cpus = [
            MACHO_CPUS.get(struct.unpack_from(">I", head, 8 + i * 20)[0], "unknown") for i in range(count)
        ]
        return {"universal": True, "architectures": cpus}
    if len(head) < 20:
        return {"error": "truncated Mach-O header"}
    order = ">" if magic in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf") else "<"
    cpu, _, file_type, command_count = struct.unpack_from(order + "IIII", head, 4)
    return {
        "universal": False,
        "bits": 64 if magic in (b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe") else 32,
        "cpu": MACHO_CPUS.get(cpu, hex(cpu)),
        "type": MACHO_TYPES.get(file_type, str(file_type)),
        "loadCommands": command_count,
    }
