"""Every way a client submits a job (cortex-api.md §1.1, §3.10, §4.1; clients.md §1.5, §2.1, §2.2, §5),
and the requests that must be refused — without creating a job."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Server,
    Tenant,
    bootstrap_superadmin,
    enable,
    make_server,
    new_tenant,
)

SAMPLE = b"sample file content, mentioning 198.51.100.77\n"


# -- helpers ----------------------------------------------------------------------------------------------


def multipart(parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart body with parts in exactly the given order: (name, filename, content type, content)."""
    boundary = f"nc-{secrets.token_hex(8)}"
    body = b""
    for name, filename, content_type, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        body += head.encode() + b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def json_part(document: dict) -> tuple[str, None, None, bytes]:
    return ("_json", None, None, json.dumps(document).encode())


def wait(client: httpx.Client, job_id: str) -> dict:
    response = client.get(f"/api/job/{job_id}/waitreport", params={"atMost": "60 seconds"})
    assert response.status_code == 200, response.text
    return response.json()


def submitted(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] in ("Waiting", "InProgress", "Success")
    assert "fromCache" not in job
    return job


def job_total(client: httpx.Client) -> int:
    """How many (non-deleted) jobs the caller's organization has."""
    response = client.post("/api/job/_search", json={"query": {}, "range": "0-1"})
    assert response.status_code == 200, response.text
    return int(response.headers["X-Total"])


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo(tenant: Tenant) -> str:
    # no cache: every submission below must create (and run) its own job
    return enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo_inputs", jobCache=0)["id"]


@pytest.fixture(scope="module")
def tagger(tenant: Tenant) -> str:
    return enable(tenant.admin, "responder", "Tagger_1_0", configuration={"tag": "seen"})["id"]


@pytest.fixture()
def no_new_job(tenant: Tenant) -> Iterator[None]:
    """The test's requests are all refused: the organization has exactly as many jobs afterwards."""
    before = job_total(tenant.analyst)
    yield
    assert job_total(tenant.analyst) == before


# -- JSON, legacy, form and query string ------------------------------------------------------------------


def test_json_body(tenant: Tenant, echo: str) -> None:
    body = {"dataType": "ip", "data": "192.0.2.10", "tlp": 1, "pap": 3, "message": "json",
            "parameters": {"k": "v", "n": [1, 2]}, "label": "a label"}  # fmt: skip
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", json=body))
    assert (job["dataType"], job["data"], job["tlp"], job["pap"], job["message"]) == (
        "ip",
        "192.0.2.10",
        1,
        3,
        "json",
    )
    assert job["parameters"] == {"k": "v", "n": [1, 2]} and job["label"] == "a label"
    assert job["workerId"] == job["analyzerId"] == echo and job["type"] == "analyzer"
    done = wait(tenant.analyst, job["id"])
    assert done["status"] == "Success", done["report"]
    full = done["report"]["full"]
    assert (full["data"], full["dataType"], full["tlp"], full["pap"], full["message"]) == (
        "192.0.2.10",
        "ip",
        1,
        3,
        "json",
    )
    assert full["parameters"] == {"k": "v", "n": [1, 2]}


def test_defaults(tenant: Tenant, echo: str) -> None:
    job = submitted(
        tenant.analyst.post(f"/api/analyzer/{echo}/run", json={"dataType": "ip", "data": "192.0.2.11"})
    )
    assert (job["tlp"], job["pap"], job["message"], job["parameters"]) == (2, 2, "", {})
    assert "label" not in job


def test_legacy_thehive3_body(tenant: Tenant, echo: str) -> None:
    body = {"data": "192.0.2.12", "attributes": {"dataType": "ip", "tlp": 0, "pap": 1, "message": "case-42"}}
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", json=body))
    assert (job["dataType"], job["data"], job["tlp"], job["pap"], job["message"]) == (
        "ip",
        "192.0.2.12",
        0,
        1,
        "case-42",
    )
    done = wait(tenant.analyst, job["id"])
    assert done["status"] == "Success", done["report"]
    assert (done["report"]["full"]["data"], done["report"]["full"]["message"]) == ("192.0.2.12", "case-42")


def test_url_encoded_form(tenant: Tenant, echo: str) -> None:
    form = {"dataType": "domain", "data": "form.example", "tlp": "1", "pap": "0", "message": "from a form"}
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", data=form))
    assert (job["dataType"], job["data"], job["tlp"], job["pap"], job["message"]) == (
        "domain", "form.example", 1, 0, "from a form")  # fmt: skip
    assert wait(tenant.analyst, job["id"])["report"]["full"]["data"] == "form.example"


def test_form_field_starting_with_underscore_is_refused(tenant: Tenant, echo: str, no_new_job) -> None:
    response = tenant.analyst.post(
        f"/api/analyzer/{echo}/run", data={"dataType": "ip", "data": "192.0.2.1", "_json": "{}"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BadRequest" and "_" in response.json()["message"]


def test_query_string_overrides_body(tenant: Tenant, echo: str) -> None:
    body = {"dataType": "ip", "data": "192.0.2.13", "tlp": 3, "message": "body"}
    job = submitted(
        tenant.analyst.post(
            f"/api/analyzer/{echo}/run",
            json=body,
            params={"tlp": "0", "message": "query", "data": "192.0.2.14"},
        )
    )
    assert (job["tlp"], job["message"], job["data"]) == (0, "query", "192.0.2.14")
    # the query string alone is a complete request too (no body at all)
    alone = submitted(
        tenant.analyst.post(
            f"/api/analyzer/{echo}/run", params={"dataType": "other", "data": "only the query"}
        )
    )
    assert (alone["dataType"], alone["data"], alone["tlp"]) == ("other", "only the query", 2)


def test_n8n_parameters_array_is_tolerated(tenant: Tenant, echo: str, tagger: str) -> None:
    job = submitted(
        tenant.analyst.post(
            f"/api/analyzer/{echo}/run", json={"dataType": "ip", "data": "192.0.2.15", "parameters": []}
        )
    )
    assert job["parameters"] == {}
    assert wait(tenant.analyst, job["id"])["status"] == "Success"
    body = {"responderId": tagger, "label": "n8n", "dataType": "thehive:case", "data": {"title": "c"}, "tlp": 2,
            "pap": 2, "message": "", "parameters": []}  # fmt: skip
    action = submitted(tenant.analyst.post(f"/api/responder/{tagger}/run", json=body))
    assert action["parameters"] == {}
    assert wait(tenant.analyst, action["id"])["status"] == "Success"


# -- files ------------------------------------------------------------------------------------------------


def check_file_job(tenant: Tenant, job: dict, content: bytes, filename: str, content_type: str) -> None:
    sha256 = hashlib.sha256(content).hexdigest()
    hashes = [sha256, hashlib.sha1(content).hexdigest(), hashlib.md5(content).hexdigest()]
    assert job["dataType"] == "file" and "data" not in job
    assert job["attachment"] == {"name": filename, "hashes": hashes, "size": len(content),
                                 "contentType": content_type, "id": sha256}  # fmt: skip
    done = wait(tenant.analyst, job["id"])
    assert done["status"] == "Success", done["report"]
    full = done["report"]["full"]
    assert full["file_content"] == content.decode()
    assert (full["filename"], full["contentType"], full["data"]) == (filename, content_type, filename)


@pytest.mark.parametrize("part_name", ["data", "attachment"])
@pytest.mark.parametrize("json_first", [True, False], ids=["json-first", "file-first"])
def test_multipart_file(tenant: Tenant, echo: str, part_name: str, json_first: bool) -> None:
    content = SAMPLE + f"{part_name} {json_first}".encode()
    meta = json_part({"dataType": "file", "tlp": 1, "pap": 0, "message": "upload", "parameters": {"p": 1}})
    upload = (part_name, "sample.txt", "text/plain", content)
    body, headers = multipart([meta, upload] if json_first else [upload, meta])
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
    assert (job["tlp"], job["pap"], job["message"], job["parameters"]) == (1, 0, "upload", {"p": 1})
    check_file_job(tenant, job, content, "sample.txt", "text/plain")


@pytest.mark.parametrize("json_first", [True, False], ids=["json-first", "file-first"])
def test_thehive4_file_with_data_null(tenant: Tenant, echo: str, json_first: bool) -> None:
    content = SAMPLE + b"thehive 4" + str(json_first).encode()
    meta = json_part({"tlp": 2, "pap": 2, "dataType": "file", "message": "#1", "data": None,
                      "parameters": {"organisation": "o", "user": "u"}})  # fmt: skip
    upload = ("data", "report.pdf", "application/pdf", content)
    body, headers = multipart([meta, upload] if json_first else [upload, meta])
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
    check_file_job(tenant, job, content, "report.pdf", "application/pdf")


def test_thehive3_file_with_attachment_object(tenant: Tenant, echo: str) -> None:
    content = SAMPLE + b"thehive 3"
    # TheHive 3: the file part first, without a content type, then `_json` with an attachment *object*
    meta = json_part({"tlp": 2, "pap": 2, "dataType": "file", "message": "case 3",
                      "attachment": {"name": "th3.bin", "hashes": ["not", "these"], "size": 1,
                                     "contentType": "x/ignored", "id": "not-this-id"}})  # fmt: skip
    body, headers = multipart([("data", "th3.bin", None, content), meta])
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
    check_file_job(tenant, job, content, "th3.bin", "application/octet-stream")


def test_legacy_attributes_with_a_file(tenant: Tenant, echo: str) -> None:
    content = SAMPLE + b"legacy multipart"
    meta = json_part({"attributes": {"dataType": "file", "tlp": 0, "pap": 3, "message": "legacy file"}})
    body, headers = multipart([meta, ("data", "legacy.txt", "text/plain", content)])
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
    assert (job["tlp"], job["pap"], job["message"]) == (0, 3, "legacy file")
    check_file_job(tenant, job, content, "legacy.txt", "text/plain")


@pytest.mark.parametrize(
    ("client_name", "stored_name"),
    [("C:\\dir\\evil.exe", "evil.exe"), ("../../x.txt", "x.txt"), ("/abs/path/y.txt", "y.txt")],
)
def test_client_path_is_stripped_from_the_file_name(
    tenant: Tenant, echo: str, client_name: str, stored_name: str
) -> None:
    content = SAMPLE + client_name.encode()
    body, headers = multipart([json_part({"dataType": "file"}), ("data", client_name, "text/plain", content)])
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
    check_file_job(tenant, job, content, stored_name, "text/plain")


def test_other_data_parts_are_ignored(tenant: Tenant, echo: str) -> None:
    content = SAMPLE + b"extra parts"
    body, headers = multipart(
        [
            ("tlp", None, None, b"3"),
            json_part({"dataType": "file", "tlp": 1}),
            ("data", "s.txt", "text/plain", content),
        ]
    )
    job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
    assert job["tlp"] == 1
    check_file_job(tenant, job, content, "s.txt", "text/plain")


def test_same_content_is_stored_once(server: Server, tenant: Tenant, echo: str) -> None:
    content = SAMPLE + b"dedup"
    ids = []
    for name in ("one.txt", "two.txt"):
        body, headers = multipart([json_part({"dataType": "file"}), ("data", name, "text/plain", content)])
        job = submitted(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
        assert job["attachment"]["name"] == name
        ids.append(job["attachment"]["id"])
        assert wait(tenant.analyst, job["id"])["status"] == "Success"
    assert ids[0] == ids[1] == hashlib.sha256(content).hexdigest()
    stored = [p for p in (server.data_dir / "attachments").rglob(ids[0])]
    assert len(stored) == 1 and stored[0].read_bytes() == content


# -- responders -------------------------------------------------------------------------------------------


def test_responder_receives_the_object(tenant: Tenant, tagger: str) -> None:
    case = {
        "_id": "~4104",
        "_type": "case",
        "title": "A case",
        "tags": ["x"],
        "caseId": 42,
        "nested": {"n": None},
    }
    body = {"label": "#42 A case", "data": case, "dataType": "thehive:case", "tlp": 1, "pap": 1,
            "parameters": {"user": "me"}}  # fmt: skip
    job = submitted(tenant.analyst.post(f"/api/responder/{tagger}/run", json=body))
    assert job["data"] == case and job["type"] == "responder" and job["label"] == "#42 A case"
    done = wait(tenant.analyst, job["id"])
    assert done["status"] == "Success", done["report"]
    assert done["data"] == case
    assert done["report"]["full"] == {"message": "tagged", "received": case, "dataType": "thehive:case"}
    assert done["report"]["operations"][0] == {"type": "AddTagToCase", "tag": "seen"}
    assert tenant.analyst.get(f"/api/job/{job['id']}").json()["data"] == case


def test_responder_legacy_body(tenant: Tenant, tagger: str) -> None:
    case = {"title": "legacy"}
    body = {"data": case, "attributes": {"dataType": "thehive:case", "tlp": 0, "pap": 0, "message": "m"}}
    job = submitted(tenant.analyst.post(f"/api/responder/{tagger}/run", json=body))
    assert (job["data"], job["dataType"], job["tlp"], job["message"]) == (case, "thehive:case", 0, "m")
    assert wait(tenant.analyst, job["id"])["report"]["full"]["received"] == case


# -- refused requests -------------------------------------------------------------------------------------


def attribute_errors(response: httpx.Response) -> list[dict]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "AttributeCheckingError", body
    assert isinstance(body["errors"], list) and body["errors"]
    return body["errors"]


def test_missing_data_type(tenant: Tenant, echo: str, no_new_job) -> None:
    errors = attribute_errors(tenant.analyst.post(f"/api/analyzer/{echo}/run", json={"data": "192.0.2.1"}))
    assert {"name": "dataType", "type": "MissingAttributeError"}.items() <= errors[0].items()
    legacy = tenant.analyst.post(
        f"/api/analyzer/{echo}/run", json={"data": "192.0.2.1", "attributes": {"tlp": 1}}
    )
    assert attribute_errors(legacy)[0]["name"] == "dataType"


def test_analyzer_data_null_or_missing(tenant: Tenant, echo: str, no_new_job) -> None:
    for body in (
        {"dataType": "ip", "data": None},
        {"dataType": "ip"},
        {"dataType": "ip", "data": {"an": "object"}},
    ):
        errors = attribute_errors(tenant.analyst.post(f"/api/analyzer/{echo}/run", json=body))
        assert [e["name"] for e in errors] == ["data/attachment"], errors


def test_data_string_and_file_together(tenant: Tenant, echo: str, no_new_job) -> None:
    body, headers = multipart(
        [json_part({"dataType": "file", "data": "192.0.2.1"}), ("attachment", "f.txt", "text/plain", SAMPLE)]
    )
    errors = attribute_errors(tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers))
    assert errors[0]["name"] == "data/attachment" and errors[0]["type"] == "InvalidFormatAttributeError"


def test_attachment_that_is_not_a_file(tenant: Tenant, echo: str, no_new_job) -> None:
    body = {"dataType": "file", "attachment": {"name": "x", "id": "y"}}
    assert (
        attribute_errors(tenant.analyst.post(f"/api/analyzer/{echo}/run", json=body))[0]["name"]
        == "attachment"
    )


@pytest.mark.parametrize(
    ("field", "value"), [("tlp", 4), ("pap", -1), ("tlp", "abc"), ("pap", 2.5), ("tlp", True)]
)
def test_invalid_tlp_or_pap(tenant: Tenant, echo: str, field: str, value, no_new_job) -> None:
    body = {"dataType": "ip", "data": "192.0.2.1", field: value}
    errors = attribute_errors(tenant.analyst.post(f"/api/analyzer/{echo}/run", json=body))
    assert [(e["name"], e["type"]) for e in errors] == [(field, "InvalidFormatAttributeError")]
    assert errors[0]["value"] == value


def test_invalid_tlp_in_a_form_and_in_legacy_attributes(tenant: Tenant, echo: str, no_new_job) -> None:
    form = tenant.analyst.post(
        f"/api/analyzer/{echo}/run", data={"dataType": "ip", "data": "192.0.2.1", "tlp": "9"}
    )
    assert attribute_errors(form)[0]["name"] == "tlp"
    legacy = {"data": "192.0.2.1", "attributes": {"dataType": "ip", "pap": 7}}
    assert attribute_errors(tenant.analyst.post(f"/api/analyzer/{echo}/run", json=legacy))[0]["name"] == "pap"


def test_malformed_json(tenant: Tenant, echo: str, no_new_job) -> None:
    response = tenant.analyst.post(
        f"/api/analyzer/{echo}/run",
        content=b'{"dataType": "ip", "data": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BadRequest" and "Invalid JSON" in response.json()["message"]
    body, headers = multipart([("_json", None, None, b"{not json"), ("data", "f.txt", "text/plain", SAMPLE)])
    part = tenant.analyst.post(f"/api/analyzer/{echo}/run", content=body, headers=headers)
    assert part.status_code == 400 and "_json" in part.json()["message"], part.text


@pytest.mark.parametrize("document", [[{"dataType": "ip", "data": "192.0.2.1"}], "192.0.2.1", 42, None])
def test_json_body_that_is_not_an_object(tenant: Tenant, echo: str, document, no_new_job) -> None:
    response = tenant.analyst.post(
        f"/api/analyzer/{echo}/run",
        content=json.dumps(document),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BadRequest" and "object" in response.json()["message"]


def test_unknown_worker_and_reader(tenant: Tenant, echo: str, no_new_job) -> None:
    unknown = tenant.analyst.post("/api/analyzer/nope/run", json={"dataType": "ip", "data": "192.0.2.1"})
    assert unknown.status_code == 404 and unknown.json()["type"] == "NotFoundError"
    reader = tenant.reader.post(f"/api/analyzer/{echo}/run", json={"dataType": "ip", "data": "192.0.2.1"})
    assert reader.status_code == 403 and reader.json()["type"] == "AuthorizationError"


# -- upload size limit (a server of its own) --------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("small"), extra_env={"NEUROCORTEX_MAX_UPLOAD_SIZE": "100000"})
    srv.start()
    yield srv
    srv.stop()


def test_oversized_upload(small_server: Server) -> None:
    small = new_tenant(bootstrap_superadmin(small_server))
    worker = enable(small.admin, "analyzer", "Echo_1_0", jobCache=0)["id"]
    url = f"/api/analyzer/{worker}/run"

    # below the limit: accepted and run
    body, headers = multipart([json_part({"dataType": "file"}), ("data", "ok.bin", None, b"x" * 50_000)])
    job = submitted(small.analyst.post(url, content=body, headers=headers))
    assert wait(small.analyst, job["id"])["report"]["full"]["file_content"] == "x" * 50_000
    before = job_total(small.analyst)

    big = b"y" * 200_000
    body, headers = multipart([json_part({"dataType": "file"}), ("data", "big.bin", None, big)])
    response = small.analyst.post(url, content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["type"] == "PayloadTooLarge"

    # streamed without a Content-Length: the limit is enforced on what arrives
    def chunks():
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]

    streamed = small.analyst.post(url, content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text

    huge_json = small.analyst.post(url, json={"dataType": "other", "data": "z" * 200_000})
    assert huge_json.status_code == 413, huge_json.text

    assert job_total(small.analyst) == before
    sha = hashlib.sha256(big).hexdigest()
    assert not list(Path(small_server.data_dir, "attachments").rglob(sha))
    assert small_server.process is not None and small_server.process.poll() is None
