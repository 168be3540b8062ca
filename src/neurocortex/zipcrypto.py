"""Password-protected ZIP files (ZipCrypto), as Cortex and MISP exchange malware samples.

ZipCrypto is weak, but it is what Cortex produces, what MISP and misp-modules use (password `infected`)
and what every unzip tool opens: the point is to keep antivirus and careless double-clicks away from
malware samples, not secrecy. libarchive does the work in C with the GIL released; it is imported when
needed so that a host without the system library (Debian libarchive13) only loses these ZIPs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, BinaryIO


class ZipError(ValueError):
    pass


def _libarchive() -> Any:
    try:
        import libarchive
    except (ImportError, OSError) as exc:  # pragma: no cover - depends on the host
        raise RuntimeError(
            "ZIP files need the system libarchive (Debian/Ubuntu package libarchive13)"
        ) from exc
    return libarchive


def write(
    destination: BinaryIO, entry_name: str, size: int, chunks: Iterable[bytes], password: str, block_size: int
) -> None:
    """Write to `destination` a ZIP holding one entry, stored uncompressed (samples are mostly packed or
    compressed already, and storing is several times faster) and written sequentially (data descriptor),
    so `destination` need not be seekable."""
    if not entry_name or any(c in entry_name for c in "/\\\0"):
        raise ValueError(f"Invalid ZIP entry name {entry_name!r}")
    libarchive = _libarchive()
    failure: list[BaseException] = []

    def write_block(block) -> int:
        try:
            destination.write(bytes(block))
        except BaseException as exc:  # reported after libarchive gives up
            failure.append(exc)
            return -1
        return len(block)

    try:
        with libarchive.custom_writer(
            write_block,
            "zip",
            options="zip:encryption=zipcrypt,zip:compression=store",
            passphrase=password,
            block_size=block_size,
        ) as archive:
            archive.add_file_from_memory(entry_name, size, chunks, permission=0o644, mtime=time.time())
    except libarchive.ArchiveError:
        if failure:
            raise failure[0] from None
        raise


def first_file(data: bytes, password: str, max_size: int) -> tuple[str, bytes]:
    """(name, content) of the first file of an encrypted (or plain) ZIP held in memory."""
    libarchive = _libarchive()
    try:
        with libarchive.memory_reader(data, format_name="zip", passphrase=password) as archive:
            for entry in archive:
                if not entry.isfile:
                    continue
                content = bytearray()
                for block in entry.get_blocks():
                    content += block
                    if len(content) > max_size:
                        raise ZipError(f"the file in the ZIP is larger than {max_size} bytes")
                return entry.pathname.replace("\\", "/").rsplit("/", 1)[-1] or "noname", bytes(content)
    except libarchive.ArchiveError as exc:
        raise ZipError(f"not a readable ZIP with the password {password!r}: {exc.msg}") from None
    raise ZipError("the ZIP holds no file")
