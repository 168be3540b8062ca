"""Content-addressed attachment store on disk.

Uploads and file artifacts are kept once per content, named by their SHA-256, in `root/ab/cd/<sha256>`.
Everything here is synchronous and may take seconds on large files: callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from neurocortex.errors import NotFoundError, PayloadTooLarge

CHUNK_SIZE = 1024 * 1024
_FILE_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredFile:
    id: str
    """SHA-256, lowercase hex."""
    sha1: str
    md5: str
    size: int

    @property
    def hashes(self) -> list[str]:
        """In Cortex's order, as clients read `attachment.hashes`."""
        return [self.id, self.sha1, self.md5]


class Datastore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put_file(self, source: Path | BinaryIO, max_size: int | None = None) -> StoredFile:
        """Store the content of `source` (a path or a binary stream read to its end) and return its identity."""
        self.root.mkdir(parents=True, exist_ok=True)
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(usedforsecurity=False)
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        # The temporary file lives in root so that the final rename stays on one filesystem (atomic).
        fd, temp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with open(fd, "wb") as temp, _open_source(source) as stream:
                while chunk := stream.read(CHUNK_SIZE):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise PayloadTooLarge(f"File is larger than the {max_size}-byte limit")
                    sha256.update(chunk)
                    sha1.update(chunk)
                    md5.update(chunk)
                    temp.write(chunk)
                temp.flush()
                os.fsync(temp.fileno())
            stored = StoredFile(sha256.hexdigest(), sha1.hexdigest(), md5.hexdigest(), size)
            target = self._location(stored.id)
            if target.exists():
                os.unlink(temp_name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                # Read-only: job folders receive hard links to these files, and a worker that opened
                # its input for writing would otherwise silently corrupt the stored content.
                os.chmod(temp_name, 0o444)
                os.replace(temp_name, target)
                _fsync_directory(target.parent)
            return stored
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise

    def path(self, file_id: str) -> Path | None:
        if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
            return None
        location = self._location(file_id)
        return location if location.is_file() else None

    def delete(self, file_id: str) -> None:
        location = self.path(file_id)
        if location is not None:
            with contextlib.suppress(FileNotFoundError):
                location.unlink()

    def write_zip(self, file_id: str, entry_name: str, password: str, destination: BinaryIO) -> None:
        """Write to `destination` a ZIP holding the file as `entry_name`, encrypted with ZipCrypto.

        ZipCrypto is weak, but it is what Cortex produces and what every unzip tool opens: the point is to
        keep antivirus and careless double-clicks away from malware samples, not secrecy. Entries are
        stored uncompressed: samples are mostly packed or already compressed, and storing is several times
        faster. The archive is written sequentially (data descriptor), so `destination` need not be seekable.
        """
        location = self.path(file_id)
        if location is None:
            raise NotFoundError(f"File {file_id} not found")
        if not entry_name or any(c in entry_name for c in "/\\\0"):
            raise ValueError(f"Invalid ZIP entry name {entry_name!r}")
        try:
            # libarchive does the encryption in C with the GIL released; imported here so that a host
            # without the system library only loses ZIP downloads.
            import libarchive
        except (ImportError, OSError) as exc:  # pragma: no cover - depends on the host
            raise RuntimeError(
                "ZIP downloads need the system libarchive (Debian/Ubuntu package libarchive13)"
            ) from exc

        failure: list[BaseException] = []

        def write_block(block) -> int:
            try:
                destination.write(bytes(block))
            except BaseException as exc:  # reported after libarchive gives up
                failure.append(exc)
                return -1
            return len(block)

        with open(location, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            chunks = iter(lambda: source.read(CHUNK_SIZE), b"")
            try:
                with libarchive.custom_writer(
                    write_block,
                    "zip",
                    options="zip:encryption=zipcrypt,zip:compression=store",
                    passphrase=password,
                    block_size=CHUNK_SIZE,
                ) as archive:
                    archive.add_file_from_memory(
                        entry_name, size, chunks, permission=0o644, mtime=time.time()
                    )
            except libarchive.ArchiveError:
                if failure:
                    raise failure[0] from None
                raise

    def _location(self, file_id: str) -> Path:
        return self.root / file_id[:2] / file_id[2:4] / file_id


@contextlib.contextmanager
def _open_source(source: Path | BinaryIO):
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            yield stream
    else:
        yield source


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
