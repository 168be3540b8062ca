"""The content-addressed attachment store and its password-protected ZIP downloads."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from neurocortex.errors import NotFoundError, PayloadTooLarge
from neurocortex.store.datastore import Datastore, StoredFile

SAMPLE = b"MZ\x90\x00" + bytes(range(256)) * 4000 + b"EICAR-ish tail"


def expected(content: bytes) -> StoredFile:
    return StoredFile(
        id=hashlib.sha256(content).hexdigest(),
        sha1=hashlib.sha1(content).hexdigest(),
        md5=hashlib.md5(content).hexdigest(),
        size=len(content),
    )


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir())


@pytest.fixture
def store(tmp_path: Path) -> Datastore:
    return Datastore(tmp_path / "attachments")


def test_put_file_from_a_stream_hashes_and_stores_by_sha256(store: Datastore):
    stored = store.put_file(io.BytesIO(SAMPLE))

    assert stored == expected(SAMPLE)
    assert stored.hashes == [stored.id, stored.sha1, stored.md5]
    path = store.path(stored.id)
    assert path == store.root / stored.id[:2] / stored.id[2:4] / stored.id
    assert path.read_bytes() == SAMPLE
    assert files_under(store.root) == [path]


def test_put_file_from_a_path(store: Datastore, tmp_path: Path):
    source = tmp_path / "upload.bin"
    source.write_bytes(SAMPLE)
    assert store.put_file(source) == expected(SAMPLE)
    assert source.exists()


def test_empty_file(store: Datastore):
    stored = store.put_file(io.BytesIO(b""))
    assert stored == expected(b"")
    assert store.path(stored.id).read_bytes() == b""


def test_same_content_is_stored_once(store: Datastore):
    first = store.put_file(io.BytesIO(SAMPLE))
    second = store.put_file(io.BytesIO(SAMPLE))
    other = store.put_file(io.BytesIO(b"other"))

    assert first == second
    assert files_under(store.root) == sorted([store.path(first.id), store.path(other.id)])


def test_stored_files_are_read_only(store: Datastore):
    # Job folders get hard links to them; a worker must not be able to alter the stored content by accident.
    stored = store.put_file(io.BytesIO(SAMPLE))
    assert store.path(stored.id).stat().st_mode & 0o222 == 0


@pytest.mark.parametrize("size", [1, 1024 * 1024 + 1, 3 * 1024 * 1024])
def test_a_file_over_the_limit_is_refused_and_leaves_nothing(store: Datastore, size: int):
    with pytest.raises(PayloadTooLarge):
        store.put_file(io.BytesIO(b"x" * size), max_size=size - 1)
    assert files_under(store.root) == []


def test_a_file_at_the_limit_is_accepted(store: Datastore):
    assert store.put_file(io.BytesIO(b"x" * 100), max_size=100).size == 100


def test_a_failing_source_leaves_nothing(store: Datastore):
    class Broken(io.RawIOBase):
        calls = 0

        def readable(self):
            return True

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 2:
                raise ConnectionResetError("client went away")
            return b"x" * 1000

    with pytest.raises(ConnectionResetError):
        store.put_file(Broken())
    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "file_id",
    [
        "",
        "abc",
        "../../etc/passwd",
        "A" * 64,
        hashlib.sha256(b"never stored").hexdigest(),
        hashlib.sha256(b"x").hexdigest().upper(),
        "../" + "a" * 61,
        None,
    ],
)
def test_path_is_none_for_unknown_or_malformed_ids(store: Datastore, file_id):
    store.put_file(io.BytesIO(b"x"))
    assert store.path(file_id) is None


def test_delete(store: Datastore):
    stored = store.put_file(io.BytesIO(SAMPLE))
    store.delete(stored.id)
    assert store.path(stored.id) is None
    store.delete(stored.id)  # already gone
    store.delete("../../etc/passwd")  # ignored


# -- ZIP downloads ----------------------------------------------------------------------------------------


def zip_of(store: Datastore, file_id: str, name: str = "sample.exe", password: str = "malware") -> bytes:
    out = io.BytesIO()
    store.write_zip(file_id, name, password, out)
    return out.getvalue()


def test_the_zip_opens_with_the_password_only(store: Datastore):
    stored = store.put_file(io.BytesIO(SAMPLE))

    archive = zipfile.ZipFile(io.BytesIO(zip_of(store, stored.id, "invoice.pdf.exe")))

    [entry] = archive.infolist()
    assert entry.filename == "invoice.pdf.exe"
    assert entry.file_size == len(SAMPLE)
    assert entry.flag_bits & 0x1  # encrypted
    assert archive.read(entry, pwd=b"malware") == SAMPLE
    with pytest.raises(RuntimeError, match="password required"):
        archive.read(entry)
    with pytest.raises(RuntimeError, match="Bad password"):
        archive.read(entry, pwd=b"wrong")


def test_the_zip_keeps_a_non_ascii_entry_name(store: Datastore):
    stored = store.put_file(io.BytesIO(b"data"))
    archive = zipfile.ZipFile(io.BytesIO(zip_of(store, stored.id, "évil file (1).doc", password="pässword")))
    assert archive.namelist() == ["évil file (1).doc"]
    assert archive.read("évil file (1).doc", pwd="pässword".encode()) == b"data"


def test_the_zip_streams_to_a_non_seekable_destination(store: Datastore):
    class Pipe:
        def __init__(self):
            self.chunks: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.chunks.append(bytes(data))
            return len(data)

    stored = store.put_file(io.BytesIO(SAMPLE * 3))
    pipe = Pipe()
    store.write_zip(stored.id, "s.bin", "malware", pipe)

    archive = zipfile.ZipFile(io.BytesIO(b"".join(pipe.chunks)))
    assert archive.read("s.bin", pwd=b"malware") == SAMPLE * 3
    assert len(pipe.chunks) > 1


def test_a_failing_destination_raises_its_own_error(store: Datastore):
    class Disconnected:
        def write(self, data):
            raise BrokenPipeError("client went away")

    stored = store.put_file(io.BytesIO(SAMPLE))
    with pytest.raises(BrokenPipeError, match="client went away"):
        store.write_zip(stored.id, "s.bin", "malware", Disconnected())


def test_zip_of_an_unknown_file_or_with_a_bad_entry_name(store: Datastore):
    with pytest.raises(NotFoundError):
        store.write_zip(hashlib.sha256(b"?").hexdigest(), "x", "malware", io.BytesIO())
    stored = store.put_file(io.BytesIO(b"x"))
    for name in ("", "../x", "a/b", "a\\b"):
        with pytest.raises(ValueError):
            store.write_zip(stored.id, name, "malware", io.BytesIO())


@pytest.fixture
def unzip() -> str:
    path = shutil.which("unzip")
    if path is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "unzip"], capture_output=True, timeout=300)
        path = shutil.which("unzip")
    if path is None:
        pytest.skip("the unzip command is not installable here")
    return path


def test_unzip_opens_the_zip_with_the_password(store: Datastore, tmp_path: Path, unzip: str):
    stored = store.put_file(io.BytesIO(SAMPLE))
    archive = tmp_path / "sample.zip"
    archive.write_bytes(zip_of(store, stored.id, "sample.exe"))
    target = tmp_path / "out"

    refused = subprocess.run([unzip, "-P", "wrong", "-d", str(target), str(archive)], capture_output=True)
    assert refused.returncode != 0
    assert not (target / "sample.exe").exists()

    subprocess.run([unzip, "-P", "malware", "-d", str(target), str(archive)], check=True, capture_output=True)
    assert (target / "sample.exe").read_bytes() == SAMPLE


def test_a_50_megabyte_file_zips_and_every_byte_checks_out(store: Datastore, tmp_path: Path, unzip: str):
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1024 * 1024))
    stored = store.put_file(source)
    archive = tmp_path / "big.zip"

    with open(archive, "wb") as out:
        store.write_zip(stored.id, "big.bin", "malware", out)

    # unzip checks every byte against the CRC
    tested = subprocess.run([unzip, "-t", "-P", "malware", str(archive)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "No errors detected" in tested.stdout
