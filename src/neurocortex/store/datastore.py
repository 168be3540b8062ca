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
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from neurocortex import zipcrypto
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
        """Write to `destination` a ZIP holding the file as `entry_name`, encrypted with ZipCrypto."""
        location = self.path(file_id)
        if location is None:
            raise NotFoundError(f"File {file_id} not found")
        with open(location, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            chunks = iter(lambda: source.read(CHUNK_SIZE), b"")
            zipcrypto.write(destination, entry_name, size, chunks, password, CHUNK_SIZE)

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
