import socket
import ssl
from pathlib import Path

import pytest

from .conftest import clean_env
from .http_recorder import Recorder, self_signed_certificate

FLAVOR = "Webhook"
CASE = {
    "_id": "~4104",
    "_type": "case",
    "title": "Phishing wave",
    "caseId": 42,
    "tags": ["phishing"],
    "tlp": 2,
}


def job_for(make_job, url, data_type="thehive:case", data=CASE, **config):
    return make_job(
        FLAVOR,
        data_type,
        data,
        config={"url": url, **config},
        message="case 42",
        parameters={"user": "analyst"},
        responder=True,
    )


def test_posts_the_document_and_tags_the_case(make_job):
    with Recorder() as server:
        report = job_for(
            make_job, server.url + "/hooks/T0KEN", headers=["Authorization: Bearer s3cret", "X-Team: soc"]
        ).run()
    assert report["success"] is True, report
    assert report["full"]["status"] == 200
    assert report["full"]["response"] == {"ok": True}
    assert report["full"]["url"] == server.url  # the path (often a secret) is not reported
    assert report["operations"] == [{"type": "AddTagToCase", "tag": "neurocortex:webhook"}]

    [request] = server.requests
    assert request["method"] == "POST"
    assert request["path"] == "/hooks/T0KEN"
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["X-Team"] == "soc"
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert server.json() == {
        "dataType": "thehive:case",
        "data": CASE,
        "message": "case 42",
        "parameters": {"user": "analyst"},
        "tlp": 2,
        "pap": 2,
    }


@pytest.mark.parametrize(
    ("data_type", "operation"),
    [
        ("thehive:case_artifact", "AddTagToArtifact"),
        ("thehive:alert", "AddTagToAlert"),
        ("thehive:case_task", "AddTagToCase"),
        ("thehive:case_task_log", "AddTagToCase"),
    ],
)
def test_operation_depends_on_the_object(make_job, data_type, operation):
    with Recorder() as server:
        report = job_for(make_job, server.url, data_type=data_type, data={"_id": "x"}, tag="sent").run()
    assert report["operations"] == [{"type": operation, "tag": "sent"}]
    assert server.json()["dataType"] == data_type


def test_empty_tag_means_no_operation(make_job):
    with Recorder() as server:
        report = job_for(make_job, server.url, tag="").run()
    assert report["success"] is True
    assert report["operations"] == []


def test_non_2xx_is_an_error(make_job):
    with Recorder() as server:
        server.status, server.body = 503, b"maintenance"
        report = job_for(
            make_job, server.url + "/secret-path", headers=["Authorization: Bearer s3cret"]
        ).run()
    assert report["success"] is False
    assert (
        report["errorMessage"] == f"Webhook {server.url} answered HTTP 503 Service Unavailable: maintenance"
    )
    # Neither the hook URL nor the headers leak into the echoed input.
    assert report["input"]["config"]["url"] == "REMOVED"
    assert report["input"]["config"]["headers"] == "REMOVED"
    assert "secret-path" not in str(report) and "s3cret" not in str(report)


def test_redirect_is_not_followed(make_job):
    with Recorder() as server:
        server.status, server.headers = 301, {"Location": "http://elsewhere.example/new"}
        report = job_for(make_job, server.url).run()
    assert report["success"] is False
    assert "HTTP 301" in report["errorMessage"] and "elsewhere.example/new" in report["errorMessage"]
    assert len(server.requests) == 1


def test_connection_refused(make_job):
    with Recorder() as server:
        url = server.url
    report = job_for(make_job, url).run()
    assert report["success"] is False
    assert report["errorMessage"].startswith(f"Cannot reach webhook {url}:")
    assert "refused" in report["errorMessage"].lower()


def test_timeout(make_job):
    # A listening socket that never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        report = job_for(make_job, url, timeout=0.5).run()
    finally:
        silent.close()
    assert report["success"] is False
    assert report["errorMessage"] == f"Webhook {url} did not answer within 0.5 s."


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "ftp://example.org/x"}, "must be an http:// or https:// URL"),
        ({"url": None}, "The webhook url is not configured."),
        ({"headers": ["NoColonHere"]}, "Invalid header 'NoColonHere'"),
        ({"timeout": 0}, "timeout must be a positive number"),
    ],
)
def test_bad_configuration(make_job, config, message):
    job = make_job(
        FLAVOR, "thehive:case", CASE, config={"url": "http://127.0.0.1:9/", **config}, responder=True
    )
    report = job.run()
    assert report["success"] is False
    assert message in report["errorMessage"]


def test_uses_the_configured_proxy(make_job):
    # The recorder plays the proxy: urllib sends it the absolute URL of the real target.
    with Recorder() as proxy:
        job = job_for(
            make_job, "http://hooks.example.invalid/in", proxy={"http": proxy.url, "https": proxy.url}
        )
        report = job.run()
    assert report["success"] is True, report
    assert proxy.requests[0]["path"] == "http://hooks.example.invalid/in"
    assert proxy.json()["data"] == CASE


@pytest.fixture
def tls_server(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Recorder(tls_context=context) as server:
        yield server, cert


def test_tls_verification(make_job, tls_server):
    server, _ = tls_server
    report = job_for(make_job, server.url).run()
    assert report["success"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in report["errorMessage"]

    report = job_for(make_job, server.url, verify_tls=False).run()
    assert report["success"] is True
    assert len(server.requests) == 1


def test_tls_with_engine_cacerts(make_job, tls_server):
    server, cert = tls_server
    job = job_for(make_job, server.url)
    # What the engine does with a configured cacerts: input/cacerts + REQUESTS_CA_BUNDLE.
    bundle = job.directory / "input" / "cacerts"
    bundle.write_bytes(Path(cert).read_bytes())
    report = job.run(env={**clean_env(), "REQUESTS_CA_BUNDLE": str(bundle)})
    assert report["success"] is True, report
