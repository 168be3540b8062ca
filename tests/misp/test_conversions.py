"""The MISP type table and the conversions between MISP module answers/queries and jobs, on their own
(the same paths run end to end against the real misp-modules server in tests/e2e/test_misp.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

import pytest

from neurocortex import zipcrypto
from neurocortex.misp import modules, types


def test_type_table_both_ways() -> None:
    assert len(types.ATTRIBUTE_TYPES) == 194 and "named pipe" in types.ATTRIBUTE_TYPES
    for misp_type, data_type in (("ip-src", "ip"), ("hostname", "fqdn"), ("sha512/256", "hash"),
                                 ("email-subject", "mail_subject"), ("uri", "uri_path"), ("regkey|value", "registry"),
                                 ("malware-sample", "file"), ("AS", "autonomous-system"), ("btc", "other"),
                                 ("no-such-type", "other")):  # fmt: skip
        assert types.data_type(misp_type) == data_type
    assert types.misp_types("ip") == ("ip-src", "ip-dst")
    assert types.misp_types("file") == ("attachment", "malware-sample")
    assert types.misp_types("thehive:case") == ("other",)
    other = types.misp_types("other")
    assert other[:3] == ("text", "other", "comment") and "btc" in other and "ip-src" not in other
    # every MISP type is found again from its data type
    for misp_type in types.ATTRIBUTE_TYPES:
        assert misp_type in types.misp_types(types.data_type(misp_type))


def test_a_hash_is_sent_as_the_type_of_its_length() -> None:
    accepted = ["md5", "sha1", "sha256", "domain"]
    assert types.pick_misp_type("hash", "a" * 40, accepted) == "sha1"
    assert types.pick_misp_type("hash", "a" * 64, accepted) == "sha256"
    assert types.pick_misp_type("hash", "a" * 128, accepted) == "md5"  # no sha512 taken: the first hash type
    assert types.pick_misp_type("ip", "1.2.3.4", accepted) is None


SETTINGS = {"module": "m", "servers": ["http://x"], "input": ["ip-src", "attachment", "malware-sample"],
            "format": None, "options": ["apikey", "unset"]}  # fmt: skip


def test_queries_in_both_formats() -> None:
    document = {"dataType": "ip", "data": "10.0.0.1", "config": {"apikey": "k", "unset": None, "max_tlp": 2}}
    assert modules.build_query(SETTINGS, document, None, 90.5) == {
        "module": "m", "ip-src": "10.0.0.1", "config": {"apikey": "k"}, "timeout": 90}  # fmt: skip
    standard = modules.build_query(SETTINGS | {"format": "misp_standard"}, document, None, None)
    assert standard["attribute"]["type"] == "ip-src" and standard["attribute"]["value"] == "10.0.0.1"
    assert "ip-src" not in standard and "timeout" not in standard

    content = b"sample bytes"
    file_document = {"dataType": "file", "filename": "a.exe", "config": {}}
    query = modules.build_query(SETTINGS, file_document, content, None)
    assert (query["attachment"], base64.b64decode(query["data"])) == ("a.exe", content)
    only_samples = SETTINGS | {"input": ["malware-sample"]}
    query = modules.build_query(only_samples, file_document, content, None)
    assert query["malware-sample"] == f"a.exe|{hashlib.md5(content).hexdigest()}"
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(query["data"]))) as archive:
        assert archive.read("a.exe", pwd=b"infected") == content
    with pytest.raises(modules.CannotQuery, match="takes no domain"):
        modules.build_query(SETTINGS, {"dataType": "domain", "data": "x"}, None, None)


def test_answers_in_both_formats() -> None:
    simplified = {"results": [{"types": ["ip-dst", "ip-src"], "values": ["1.1.1.1", "2.2.2.2"], "comment": "c"},
                              {"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e", "tags": ["x"]},
                              {"types": ["text"], "values": [None]}]}  # fmt: skip
    summary, artifacts = modules.report("m", simplified)
    assert summary == {
        "taxonomies": [{"level": "info", "namespace": "MISP", "predicate": "m", "value": "3 attributes"}]
    }
    assert [(a["dataType"], a["data"], a["tags"]) for a in artifacts] == [
        ("ip", "1.1.1.1", ["misp:type=ip-dst"]),
        ("ip", "2.2.2.2", ["misp:type=ip-dst"]),
        ("hash", "d41d8cd98f00b204e9800998ecf8427e", ["misp:type=md5", "x"]),
    ]
    standard = {"results": {"Attribute": [{"type": "domain", "value": "a.example", "Tag": [{"name": "t"}]}],
                            "Object": [{"name": "file", "Attribute": [
                                {"type": "attachment", "object_relation": "attachment", "value": "n.txt",
                                 "data": base64.b64encode(b"x").decode()}]}]}}  # fmt: skip
    summary, artifacts = modules.report("m", standard)
    assert artifacts[0] == {"dataType": "domain", "data": "a.example", "tags": ["misp:type=domain", "t"]}
    assert (
        artifacts[1]["dataType"] == "file"
        and artifacts[1]["filename"] == "n.txt"
        and "content" in artifacts[1]
    )
    assert modules.report("m", {"results": []})[0]["taxonomies"][0] == {
        "level": "safe", "namespace": "MISP", "predicate": "m", "value": "0 attributes"}  # fmt: skip


def test_encrypted_zip_round_trip_and_refusals() -> None:
    out = io.BytesIO()
    zipcrypto.write(out, "s.bin", 3, [b"abc"], "infected", 1024)
    assert zipcrypto.first_file(out.getvalue(), "infected", 10) == ("s.bin", b"abc")
    with pytest.raises(zipcrypto.ZipError, match="password"):
        zipcrypto.first_file(out.getvalue(), "other", 10)
    with pytest.raises(zipcrypto.ZipError, match="larger than 2 bytes"):
        zipcrypto.first_file(out.getvalue(), "infected", 2)
    with pytest.raises(zipcrypto.ZipError):
        zipcrypto.first_file(b"not a zip", "infected", 10)
