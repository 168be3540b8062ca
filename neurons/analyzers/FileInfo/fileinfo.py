#!/usr/bin/env python3
"""FileInfo: hashes, type by magic bytes, entropy and format details of a file, in pure Python."""

import collections
import hashlib
import os
from dataclasses import dataclass

import archives
import documents
import pe
import unix_binaries
from cortexutils.analyzer import Analyzer
from entropy import shannon_of_counts
from filetypes import MSDOS, detect
from naming import EXTENSION_FAMILIES, extension_of, lure_findings

NAMESPACE = "FileInfo"
HEAD_SIZE = 64 * 1024  # covers every signature offset (ISO 9660 sits at 32 KiB)
SCAN_LIMIT = 20 * 1024 * 1024  # content scans (PDF keywords, OLE streams) look at this much
ENTROPY_LIMIT = 64 * 1024 * 1024
HIGH_ENTROPY = 7.2
CHUNK = 1024 * 1024

# What the ZIP-based containers are, for the report.
_CONTAINERS = {
    "docx": ("Word document (OOXML)", "document"),
    "docm": ("macro-enabled Word document (OOXML)", "document"),
    "xlsx": ("Excel workbook (OOXML)", "document"),
    "xlsm": ("macro-enabled Excel workbook (OOXML)", "document"),
    "pptx": ("PowerPoint presentation (OOXML)", "document"),
    "pptm": ("macro-enabled PowerPoint presentation (OOXML)", "document"),
    "ooxml": ("Office Open XML package", "document"),
    "odf": ("OpenDocument file", "document"),
    "epub": ("EPUB e-book", "document"),
    "jar": ("Java archive (JAR)", "executable"),
    "apk": ("Android package (APK)", "executable"),
}


def measure(handle) -> dict:
    """Size, hashes and entropy in one pass over the file."""
    digests = {name: hashlib.new(name) for name in ("md5", "sha1", "sha256", "sha512")}
    counts = collections.Counter()
    size = sampled = 0
    while chunk := handle.read(CHUNK):
        size += len(chunk)
        for digest in digests.values():
            digest.update(chunk)
        if sampled < ENTROPY_LIMIT:
            counts.update(chunk)
            sampled += len(chunk)
    return {
        "size": size,
        "hashes": {name: digest.hexdigest() for name, digest in digests.items()},
        "entropy": round(shannon_of_counts(counts.values(), sampled), 3),
        "entropySampleBytes": sampled,
    }


class FileInfo(Analyzer):
    def run(self):
        path = self.get_param("file")
        if not path:
            self.error("The file to analyze is missing from the job's input directory.")
        filename = self.get_param("filename") or os.path.basename(path)
        extension = extension_of(filename)
        with open(path, "rb") as handle:
            report = {"filename": filename, "extension": extension or None, **measure(handle)}
            handle.seek(0)
            scan = Scan(report, [], handle, path, handle.read(HEAD_SIZE))
            file_type = detect(scan.head, extension)
            label, family = file_type.label, file_type.family
            inspect = INSPECTORS.get(file_type.key)
            try:
                if inspect is not None:
                    label, family = inspect(scan, label, family)
            except Exception as exc:  # a damaged or hostile file must not cost the hashes and the type
                report["parseError"] = f"{exc.__class__.__name__}: {exc}"
                scan.findings.append(("suspicious", "Malformed", file_type.label))
        report["type"] = {"key": file_type.key, "label": label, "mime": file_type.mime, "family": family}
        findings = [("info", "Filetype", label), *scan.findings]
        findings.extend(_generic_findings(report, filename, extension, family, file_type))
        report["findings"] = [{"level": lvl, "predicate": pred, "value": val} for lvl, pred, val in findings]
        self.report(report)

    def summary(self, raw):
        taxonomies = [
            self.build_taxonomy(f["level"], NAMESPACE, f["predicate"], f["value"]) for f in raw["findings"]
        ]
        return {"taxonomies": taxonomies}

    def artifacts(self, raw):
        if not self.auto_extract:
            return []
        return [
            self.build_artifact("hash", raw["hashes"][name], message=f"{name.upper()} of {raw['filename']}")
            for name in ("md5", "sha1", "sha256")
        ]


@dataclass
class Scan:
    """What the format inspectors work on and add to."""

    report: dict
    findings: list  # (level, predicate, value)
    handle: object
    path: str
    head: bytes

    def content(self) -> bytes:
        self.handle.seek(0)
        return self.handle.read(SCAN_LIMIT)


# Each inspector adds format facts to the report and returns the refined (label, family).
def _inspect_pe(scan: Scan, label: str, family: str) -> tuple[str, str]:
    facts = pe.parse(scan.handle)
    if facts is None:
        return MSDOS.label, MSDOS.family
    scan.report["pe"] = facts
    label = f"{facts['format']} {'DLL' if facts['dll'] else 'executable'} ({facts['machine']})"
    if facts["dotnet"]:
        label += ", .NET assembly"
    if facts["packers"]:
        scan.findings.append(("suspicious", "Packer", ", ".join(facts["packers"])))
    if facts["writableExecutableSections"]:
        sections = ", ".join(facts["writableExecutableSections"])
        scan.findings.append(("suspicious", "WritableExecutableSection", sections))
    if facts["authenticodeSignature"]:
        scan.findings.append(("info", "Signature", "present (not verified)"))
    return label, family


def _inspect_elf(scan: Scan, label: str, family: str) -> tuple[str, str]:
    facts = scan.report["elf"] = unix_binaries.parse_elf(scan.handle)
    if "error" in facts:
        return label, family
    if facts["staticallyLinked"]:
        scan.findings.append(("info", "StaticallyLinked", True))
    return f"{facts['class']} {facts['type']} ({facts['machine']})", family


def _inspect_macho(scan: Scan, label: str, family: str) -> tuple[str, str]:
    scan.report["macho"] = unix_binaries.parse_macho(scan.head)
    return label, family


def _inspect_zip(scan: Scan, label: str, family: str) -> tuple[str, str]:
    facts = scan.report["zip"] = archives.inspect_zip(scan.path)
    scan.findings.extend(_zip_findings(facts))
    return _CONTAINERS.get(facts.get("container"), (label, family))


def _inspect_compressed(scan: Scan, label: str, family: str) -> tuple[str, str]:
    if scan.head.startswith(b"\x1f\x8b"):
        scan.report["gzip"] = archives.inspect_gzip(scan.handle)
    listing = archives.inspect_tar(scan.path)
    if "error" in listing:
        return label, family
    scan.report["tar"] = listing
    if listing["executables"]:
        scan.findings.append(("suspicious", "ArchiveExecutables", len(listing["executables"])))
    return (label if label == "tar archive" else f"{label} (tar)"), family


def _inspect_pdf(scan: Scan, label: str, family: str) -> tuple[str, str]:
    facts = scan.report["pdf"] = documents.pdf_keywords(scan.content())
    if facts["active"]:
        scan.findings.append(("suspicious", "ActiveContent", ", ".join(facts["active"])))
    if facts["obfuscatedNames"]:
        scan.findings.append(("suspicious", "ObfuscatedNames", facts["obfuscatedNames"]))
    return label, family


def _inspect_ole2(scan: Scan, label: str, family: str) -> tuple[str, str]:
    facts = scan.report["ole2"] = documents.ole2_streams(scan.content())
    for key, predicate in (
        ("macros", "Macros"),
        ("embeddedObjects", "EmbeddedObjects"),
        ("encrypted", "Encrypted"),
    ):
        if facts[key]:
            scan.findings.append(("suspicious", predicate, True))
    return facts["kind"], "executable" if facts["msi"] else family


def _inspect_rtf(scan: Scan, label: str, family: str) -> tuple[str, str]:
    facts = scan.report["rtf"] = documents.rtf_objects(scan.content())
    if facts["objectData"] or facts["objects"]:
        scan.findings.append(("suspicious", "EmbeddedObjects", facts["objects"] or facts["objectData"]))
    if facts["equationEditor"]:
        scan.findings.append(("suspicious", "EquationEditor", True))
    return label, family


INSPECTORS = {
    "pe": _inspect_pe,
    "elf": _inspect_elf,
    "macho": _inspect_macho,
    "zip": _inspect_zip,
    "gzip": _inspect_compressed,
    "bzip2": _inspect_compressed,
    "xz": _inspect_compressed,
    "tar": _inspect_compressed,
    "pdf": _inspect_pdf,
    "ole2": _inspect_ole2,
    "rtf": _inspect_rtf,
}


def _generic_findings(report, filename, extension, family, file_type) -> list[tuple]:
    findings = []
    # Compressed formats are naturally near 8 bits per byte; only elsewhere does it hint at packing.
    high = report["entropy"] > HIGH_ENTROPY and family in ("executable", "script", "data")
    findings.append(("suspicious" if high else "info", "Entropy", report["entropy"]))
    findings.extend(("suspicious", predicate, value) for predicate, value in lure_findings(filename))
    declared = EXTENSION_FAMILIES.get(extension)
    mismatch = declared is not None and declared != family and extension not in file_type.extensions
    report["extensionMismatch"] = mismatch
    if mismatch:
        level = "suspicious" if family in ("executable", "script") or declared == "executable" else "info"
        findings.append((level, "ExtensionMismatch", f".{extension} is {family}"))
    return findings


def _zip_findings(facts: dict) -> list[tuple]:
    if "error" in facts:
        return [("suspicious", "Damaged", facts["error"])]
    findings = []
    if facts["executables"]:
        findings.append(("suspicious", "ArchiveExecutables", len(facts["executables"])))
    if facts["encrypted"]:
        # Password-protected archives are how malware gets past mail gateways that cannot look inside.
        findings.append(("suspicious", "Encrypted", True))
    if facts["zipBomb"]:
        findings.append(("suspicious", "ZipBomb", facts["uncompressedSize"]))
    if facts.get("macros"):
        findings.append(("suspicious", "Macros", True))
    remote = [r for r in facts.get("externalRelationships", []) if r["type"] != "hyperlink"]
    if remote:
        findings.append(("suspicious", "ExternalRelationship", remote[0]["target"][:200]))
    return findings


if __name__ == "__main__":
    FileInfo().run()
