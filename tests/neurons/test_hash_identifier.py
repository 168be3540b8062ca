import hashlib

import pytest

from .conftest import taxonomies

FLAVOR = "HashIdentifier"


@pytest.mark.parametrize(
    ("value", "algorithm", "several"),
    [
        (hashlib.md5(b"x").hexdigest(), "md5", True),
        (hashlib.sha1(b"x").hexdigest().upper(), "sha1", True),
        (hashlib.sha224(b"x").hexdigest(), "sha224", True),
        (hashlib.sha256(b"x").hexdigest(), "sha256", True),
        (hashlib.sha384(b"x").hexdigest(), "sha384", True),
        (hashlib.sha512(b"x").hexdigest(), "sha512", True),
        ("3072:C3vkxEhkKPAGlMW4DwtUYNEhB:C/MQGlF4DwtUqhB", "ssdeep", False),
        ("T1" + "A1B2C3D4E5" * 7, "tlsh", False),
        ("t13d1516h2_8daaf6152771_b186095e22b6", "ja4", False),
        ("$2b$12$KIXQJvZ2x1oYV1o9yqXQeO4v5lO2FvXnQfYcZJ2a8xJpZg5Q9yM1e", "bcrypt", False),
        ("sha256-" + "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "sha256", False),
    ],
)
def test_algorithm_identification(make_job, value, algorithm, several):
    report = make_job(FLAVOR, "hash", value).run()
    assert report["success"] is True
    tax = taxonomies(report)
    assert tax["Algorithm"] == ("info", algorithm)
    assert ("Candidates" in tax) is several
    assert report["full"]["mostLikely"] == algorithm


def test_md5_candidates_include_ntlm_and_imphash(make_job):
    report = make_job(FLAVOR, "hash", hashlib.md5(b"y").hexdigest()).run()
    ids = [c["id"] for c in report["full"]["candidates"]]
    assert ids[0] == "md5"
    assert {"ntlm", "imphash", "ja3"} <= set(ids)


def test_empty_input_hash_is_flagged_safe(make_job):
    report = make_job(FLAVOR, "hash", hashlib.sha256(b"").hexdigest()).run()
    assert taxonomies(report)["KnownHash"] == ("safe", "sha256 of empty input")


def test_unknown_shape(make_job):
    report = make_job(FLAVOR, "hash", "not-a-hash-at-all").run()
    assert report["success"] is True
    assert taxonomies(report)["Algorithm"] == ("info", "unknown")
    assert report["full"]["identified"] is False


def test_no_artifacts_even_with_auto_extract(make_job):
    report = make_job(
        FLAVOR, "hash", hashlib.sha1(b"x").hexdigest(), config={"auto_extract_artifacts": True}
    ).run()
    assert report["artifacts"] == []


def test_empty_observable_is_an_error(make_job):
    report = make_job(FLAVOR, "hash", "   ").run()
    assert report["success"] is False
    assert "empty" in report["errorMessage"]
