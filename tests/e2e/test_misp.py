"""MISP both ways, with the real misp-modules server (PyPI misp-modules 3.1.0, `make misp-modules`):

- neurocortex calls misp-modules: the expansion modules are analyzer definitions, enabled and run like any
  other; their answers become reports and artifacts; module errors, timeouts and a server that went down
  are Failures with a clear message. Offline modules of misp-modules (eql, countrycode,
  extract_url_components, jinja_template_rendering) and two of ours (tests/misp_modules: options, files).
- MISP calls neurocortex: the exact `GET /modules` and `POST /query` requests of MISP 2.5 (clients.md §3),
  answered in a form MISP's own parsing accepts, for data attributes, attachments and malware samples.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import libarchive
import pytest

from tests.conftest import (
    ROOT,
    Server,
    Tenant,
    enable,
    free_port,
    make_server,
    new_tenant,
    run_and_wait,
)

MISP_MODULES_VENV = ROOT / ".venv-misp-modules"
TEST_MODULES = ROOT / "tests" / "misp_modules"


@pytest.fixture(scope="module")
def misp_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    """The real misp-modules server on loopback, with our two test modules beside its own."""
    program = MISP_MODULES_VENV / "bin" / "misp-modules"
    if not program.exists():
        pytest.fail("misp-modules is not installed: run `make misp-modules` (make test does)")
    port = free_port()
    log = tmp_path_factory.mktemp("misp-modules") / "misp-modules.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [program, "-l", "127.0.0.1", "-p", str(port), "-c", str(TEST_MODULES)], stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"misp-modules did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    yield url, process
    process.terminate()
    process.wait(20)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, misp_modules) -> Iterator[Server]:
    """A server with two misp-modules servers configured (comma-separated): one never up, the real one.
    (conftest's `superadmin` and `tenant` fixtures use this server.)"""
    url, _ = misp_modules
    dead = f"http://127.0.0.1:{free_port()}"
    srv = make_server(
        tmp_path_factory.mktemp("server"), extra_env={"NEUROCORTEX_MISP_MODULES": f"{dead},{url}"}
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def misp_types() -> frozenset[str]:
    """MISP's own list of attribute types (PyMISP's describeTypes, installed with misp-modules)."""
    script = (
        "import json, os, pymisp; print(json.dumps(json.load(open(os.path.join(os.path.dirname(pymisp.__file__),"
        " 'data', 'describeTypes.json')))['result']['types']))"
    )
    out = subprocess.run(
        [MISP_MODULES_VENV / "bin" / "python", "-c", script], capture_output=True, check=True
    )
    return frozenset(json.loads(out.stdout))


def _analyzer(tenant: Tenant, definition: str, **body) -> dict:
    for worker in tenant.admin.get("/api/analyzer", params={"range": "all"}).json():
        if worker["workerDefinitionId"] == definition and worker["name"] == body.get("name", definition):
            return worker
    return enable(tenant.admin, "analyzer", definition, **body)


# -- neurocortex → misp-modules ---------------------------------------------------------------------------


def test_expansion_modules_are_analyzer_definitions(tenant: Tenant, misp_modules) -> None:
    definitions = {d["id"]: d for d in tenant.admin.get("/api/analyzerdefinition").json()}
    expected = {
        "MISP_eql_0_1": ["ip", "filename"],
        "MISP_countrycode_1": ["fqdn", "domain"],
        "MISP_extract_url_components_1": ["url"],
        "MISP_jinja_template_rendering_0_1": ["other"],
        "MISP_nc_echo_2_1": ["other", "file"],
        "MISP_nc_sample_1": ["file"],
    }
    for definition_id, data_types in expected.items():
        assert definitions[definition_id]["dataTypeList"] == data_types
    echo = definitions["MISP_nc_echo_2_1"]
    assert (
        echo["name"] == "MISP_nc_echo" and echo["version"] == "2.1" and echo["author"] == "neurocortex tests"
    )
    assert [(i["name"], i["type"], i["required"]) for i in echo["configurationItems"]] == [
        ("greeting", "string", False),
        ("api_key", "string", False),
    ]
    # import, export and action modules are not analyzers
    offered = httpx.get(f"{misp_modules[0]}/modules", timeout=30).json()
    others = {m["name"] for m in offered if m["type"] != "expansion"}
    assert others and not {f"MISP_{name}" for name in others} & {d["name"] for d in definitions.values()}


def test_offline_modules_run(tenant: Tenant) -> None:
    eql = _analyzer(tenant, "MISP_eql_0_1")
    done = run_and_wait(tenant.analyst, eql["id"], {"dataType": "ip", "data": "10.0.0.1"})
    query = 'network where source_address == "10.0.0.1"'
    assert done["status"] == "Success", done
    report = done["report"]
    assert report["full"] == {
        "results": [
            {
                "types": ["comment"],
                "categories": ["External analysis"],
                "values": query,
                "comment": "Event EQL queries",
            }
        ]
    }
    assert report["summary"] == {
        "taxonomies": [{"level": "info", "namespace": "MISP", "predicate": "eql", "value": query}]
    }
    assert [(a["dataType"], a["data"], a["message"], a["tags"]) for a in report["artifacts"]] == [
        ("other", query, "Event EQL queries", ["misp:type=comment"])
    ]

    country = _analyzer(tenant, "MISP_countrycode_1")
    done = run_and_wait(tenant.analyst, country["id"], {"dataType": "domain", "data": "example.com"})
    assert done["report"]["full"] == {"results": [{"types": ["text"], "values": ["Commercial (Worldwide)"]}]}

    url = _analyzer(tenant, "MISP_extract_url_components_1")
    done = run_and_wait(
        tenant.analyst, url["id"], {"dataType": "url", "data": "https://www.example.co.uk:8443/a?q=1"}
    )
    assert done["status"] == "Success", done
    (misp_object,) = done["report"]["full"]["results"]["Object"]
    assert misp_object["name"] == "url"
    artifacts = {(a["dataType"], a["data"]) for a in done["report"]["artifacts"]}
    assert {("url", "https://www.example.co.uk:8443/a?q=1"), ("fqdn", "www.example.co.uk"),
            ("domain", "example.co.uk"), ("other", "8443")} <= artifacts  # fmt: skip
    port = next(a for a in done["report"]["artifacts"] if a["data"] == "8443")
    assert {"misp:type=port", "misp:object=url", "misp:relation=port"} <= set(port["tags"])

    jinja = _analyzer(tenant, "MISP_jinja_template_rendering_0_1")
    template = json.dumps({"template": "Hello {{ name }}", "data": {"name": "Cortex"}})
    done = run_and_wait(tenant.analyst, jinja["id"], {"dataType": "other", "data": template})
    assert done["report"]["summary"]["taxonomies"][0]["value"] == "Hello Cortex"


def test_module_options_and_files(tenant: Tenant) -> None:
    echo = _analyzer(tenant, "MISP_nc_echo_2_1", configuration={"greeting": "bonjour", "api_key": "s3cret"})
    done = run_and_wait(tenant.analyst, echo["id"], {"dataType": "other", "data": "world"})
    assert done["status"] == "Success", done
    artifacts = done["report"]["artifacts"]
    assert [(a["dataType"], a.get("data")) for a in artifacts] == [
        ("other", "bonjour world"),
        ("ip", "192.0.2.1"),
        ("ip", "192.0.2.2"),
        ("file", None),
        ("other", "api_key given: True"),
    ]
    assert artifacts[1]["message"] == "addresses" and "tlp:green" in artifacts[1]["tags"]
    note = artifacts[3]["attachment"]
    assert note["name"] == "note.txt"
    assert tenant.analyst.get(f"/api/datastore/{note['id']}").content == b"a note\n"

    content = b"MZ pretend executable\x00\x01"
    job = tenant.analyst.post(
        f"/api/analyzer/{echo['id']}/run",
        files={"attachment": ("report.pdf", content)},
        data={"_json": json.dumps({"dataType": "file"})},
    ).json()
    done = tenant.analyst.get(f"/api/job/{job['id']}/waitreport", params={"atMost": "60 seconds"}).json()
    assert [(a["dataType"], a["data"]) for a in done["report"]["artifacts"]] == [
        ("hash", hashlib.sha256(content).hexdigest()),
        ("filename", "report.pdf"),
    ]

    # a malware sample travels zipped with the password "infected", and comes back unzipped
    sample = _analyzer(tenant, "MISP_nc_sample_1")
    job = tenant.analyst.post(
        f"/api/analyzer/{sample['id']}/run",
        files={"attachment": ("dropper.exe", content)},
        data={"_json": json.dumps({"dataType": "file"})},
    ).json()
    done = tenant.analyst.get(f"/api/job/{job['id']}/waitreport", params={"atMost": "60 seconds"}).json()
    assert done["status"] == "Success", done
    by_type = {a["dataType"]: a for a in done["report"]["artifacts"]}
    assert by_type["hash"]["data"] in (hashlib.sha256(content).hexdigest(), hashlib.md5(content).hexdigest())
    assert by_type["filename"]["data"] == "dropper.exe"
    returned = by_type["file"]["attachment"]
    assert returned["id"] == hashlib.sha256(content).hexdigest() and returned["name"] == "dropper.exe"


def test_module_errors_and_timeouts_are_failures(tenant: Tenant) -> None:
    echo = _analyzer(tenant, "MISP_nc_echo_2_1", configuration={"greeting": "bonjour", "api_key": "s3cret"})
    done = run_and_wait(tenant.analyst, echo["id"], {"dataType": "other", "data": "error:quota exceeded"})
    assert done["status"] == "Failure" and done["errorMessage"] == "nc_echo: quota exceeded"

    slow = _analyzer(tenant, "MISP_nc_echo_2_1", name="slow echo", jobTimeout=0.05)  # 3 seconds
    done = run_and_wait(tenant.analyst, slow["id"], {"dataType": "other", "data": "sleep:8"})
    assert done["status"] == "Failure" and done["errorMessage"] == "nc_echo: Timeout."

    eql = _analyzer(tenant, "MISP_eql_0_1")
    done = run_and_wait(tenant.analyst, eql["id"], {"dataType": "domain", "data": "x.example"})
    assert done["status"] == "Failure"
    assert done["errorMessage"] == "The module eql takes no domain (it takes ip-src, ip-dst, filename)"


# -- MISP → neurocortex -------------------------------------------------------------------------------------


class Misp:
    """What MISP 2.5 sends to its Cortex module server (app/Model/Module.php) and how it reads the answers."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def modules(self) -> dict:
        """`GET /modules`: no content type, the key as a bearer token, one second to answer."""
        response = httpx.get(
            f"{self.url}/modules", headers={"Authorization": f"Bearer {self.key}"}, timeout=1
        )
        assert response.is_success, response.text
        modules = response.json()
        assert isinstance(modules, list)
        by_type: dict[str, list[str]] = {}
        for module in modules:
            assert "cortex" in module["meta"]["module-type"]
            assert isinstance(module["meta"]["description"], str) and isinstance(
                module["meta"]["config"], list
            )
            for misp_type in module["mispattributes"]["input"]:
                by_type.setdefault(misp_type, []).append(module["name"])
        return by_type

    def query(self, module: str, misp_type: str, value: str, data: bytes | None = None) -> httpx.Response:
        """`POST /query` in MISP's key order, built by `__queryOldEnrichment`."""
        body = {"module": module, misp_type: value, "event_id": "42", "attribute_uuid": str(uuid.uuid4())}
        if data is not None:
            body["data"] = base64.b64encode(data).decode()
        return httpx.post(
            f"{self.url}/query",
            content=json.dumps(body),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            timeout=120,
        )


def misp_results(response: httpx.Response, known_types: frozenset[str]) -> list[dict]:
    """The simplified results as MISP takes them (`type`/`value` or `types`/`values`, arrays or not)."""
    assert response.is_success, response.text
    answer = response.json()
    assert "error" not in answer, answer
    results = []
    for result in answer["results"]:
        types = result["types"] if "types" in result else [result["type"]]
        values = result["values"] if "values" in result else result["value"]
        values = values if isinstance(values, list) else [values]
        assert types and set(types) <= known_types, types
        if "data" in result:
            base64.b64decode(result["data"], validate=True)
        results.append({**result, "types": types, "values": values})
    return results


def cortex_report(results: list[dict]) -> dict:
    (cortex,) = [r for r in results if r["types"] == ["cortex"]]
    report = json.loads(cortex["values"][0])
    return {"full": json.loads(report["full"]), "summary": json.loads(report["summary"])}


def test_misp_lists_the_organizations_analyzers(server: Server, tenant: Tenant, superadmin) -> None:
    for definition in ("FileInfo_1_0", "IOCExtractor_1_0", "ObservableValidator_1_0", "MISP_eql_0_1"):
        _analyzer(tenant, definition)
    misp = Misp(server.url, tenant.analyst_key)
    by_type = misp.modules()
    assert "MISP_eql_0_1" in by_type["ip-src"] and "ObservableValidator_1_0" in by_type["ip-dst"]
    assert "FileInfo_1_0" in by_type["attachment"] and "FileInfo_1_0" in by_type["malware-sample"]
    assert "MISP_eql_0_1" not in by_type.get("domain", [])
    # another organization's analyzers are not offered
    other = new_tenant(superadmin)
    assert Misp(server.url, other.analyst_key).modules() == {}


def test_misp_queries_a_data_attribute(server: Server, tenant: Tenant, misp_types) -> None:
    eql = _analyzer(tenant, "MISP_eql_0_1")
    misp = Misp(server.url, tenant.analyst_key)
    response = misp.query(eql["name"], "ip-src", "10.0.0.7")
    results = misp_results(response, misp_types)
    query = 'network where source_address == "10.0.0.7"'
    # the module's own attribute type comes back, not every type of the data type "other"
    assert {"types": ["comment"], "values": [query], "comment": "Event EQL queries"} in results
    assert cortex_report(results)["summary"]["taxonomies"][0]["value"] == query
    # the same query again is answered from the cache: no new job
    jobs_before = int(tenant.analyst.get("/api/job", params={"range": "all"}).headers["X-Total"])
    assert misp_results(misp.query(eql["name"], "ip-src", "10.0.0.7"), misp_types) == results
    assert int(tenant.analyst.get("/api/job", params={"range": "all"}).headers["X-Total"]) == jobs_before
    job = tenant.analyst.get("/api/job", params={"range": "0-1"}).json()[0]
    assert (job["dataType"], job["data"], job["tlp"], job["pap"]) == ("ip", "10.0.0.7", 0, 0)

    # the attribute is the first key that is a MISP type, whatever the order of the others
    validator = _analyzer(tenant, "ObservableValidator_1_0")
    body = {"event_id": "42", "config": {}, "timeout": 30, "attribute_uuid": str(uuid.uuid4()),
            "module": validator["name"], "hostname": "WWW.Example.COM"}  # fmt: skip
    answer = httpx.post(f"{server.url}/query", json=body, headers={"Authorization": f"bearer {tenant.analyst_key}"},
                        timeout=120)  # fmt: skip
    results = misp_results(answer, misp_types)
    job = tenant.analyst.get("/api/job", params={"range": "0-1"}).json()[0]
    assert (job["dataType"], job["data"]) == ("fqdn", "WWW.Example.COM")
    assert cortex_report(results)["full"]


def test_misp_queries_file_attributes(server: Server, tenant: Tenant, misp_types) -> None:
    misp = Misp(server.url, tenant.analyst_key)
    extractor = _analyzer(tenant, "IOCExtractor_1_0")
    text = b"Beacon to http://c2.example.net/gate.php from 185.220.101.7\n"
    results = misp_results(misp.query(extractor["name"], "attachment", "mail.txt", text), misp_types)
    values = {value: result["types"] for result in results for value in result["values"]}
    assert values["http://c2.example.net/gate.php"] == ["url"]
    assert values["185.220.101.7"] == ["ip-src", "ip-dst"]
    job = tenant.analyst.get("/api/job", params={"range": "0-1"}).json()[0]
    assert job["dataType"] == "file" and job["attachment"]["name"] == "mail.txt"

    info = _analyzer(tenant, "FileInfo_1_0")
    content = b"MZ\x90\x00 a sample that is not really one"
    md5 = hashlib.md5(content).hexdigest()
    results = misp_results(
        misp.query(info["name"], "malware-sample", f"dropper.exe|{md5}", _zip(content)), misp_types
    )
    full = cortex_report(results)["full"]
    assert (
        full["hashes"]["sha256"] == hashlib.sha256(content).hexdigest() and full["filename"] == "dropper.exe"
    )


def test_misp_gets_errors_it_can_show(server: Server, tenant: Tenant) -> None:
    misp = Misp(server.url, tenant.analyst_key)
    echo = _analyzer(tenant, "MISP_nc_echo_2_1", configuration={"greeting": "hi"})
    answer = misp.query(echo["name"], "text", "error:out of credits")
    assert answer.status_code == 200 and answer.json() == {"error": "nc_echo: out of credits"}
    assert misp.query("Nope", "ip-src", "1.2.3.4").json() == {"error": "Module Nope not found"}
    info = _analyzer(tenant, "FileInfo_1_0")
    assert (
        "not a ZIP" in misp.query(info["name"], "malware-sample", "x.exe|0", b"plain bytes").json()["error"]
    )
    wrong = _zip(b"data", password="secret")
    assert "password infected" in misp.query(info["name"], "malware-sample", "x.exe|0", wrong).json()["error"]
    headers = {"Authorization": f"Bearer {tenant.analyst_key}"}
    for body, message in (
        ({"ip-src": "1.2.3.4"}, "Module parameter is not present in request"),
        ({"module": info["name"], "event_id": "1"}, "Request doesn't contain data to analyze"),
        ({"module": info["name"], "ip-src": ["1.2.3.4"]}, "Data has invalid type (expected string)"),
        (
            {"module": info["name"], "attachment": "a.txt", "data": "%%%"},
            "The attachment content is not valid base64",
        ),
    ):
        answer = httpx.post(f"{server.url}/query", json=body, headers=headers, timeout=30)
        assert answer.status_code == 400 and answer.json() == {"error": message}
    # the key is required, and /query needs the analyze role
    assert httpx.get(f"{server.url}/modules", timeout=5).status_code == 401
    reader = {"Authorization": f"Bearer {tenant.reader.headers['Authorization'][7:]}"}
    assert httpx.get(f"{server.url}/modules", headers=reader, timeout=5).status_code == 200
    assert (
        httpx.post(f"{server.url}/query", json={"module": "x"}, headers=reader, timeout=5).status_code == 403
    )


def _zip(content: bytes, password: str = "infected") -> bytes:
    """A ZipCrypto ZIP as MISP stores malware samples, made with libarchive directly."""
    out = io.BytesIO()

    def write(block) -> int:
        out.write(bytes(block))
        return len(block)

    with libarchive.custom_writer(
        write, "zip", options="zip:encryption=zipcrypt", passphrase=password
    ) as archive:
        archive.add_file_from_memory("sample.bin", len(content), content)
    return out.getvalue()


# -- the CLI, and a server that went down (last: it stops misp-modules) -----------------------------------


def test_misp_modules_command(server: Server, tenant: Tenant, misp_modules) -> None:
    _analyzer(tenant, "MISP_eql_0_1")
    listed = subprocess.run(
        [sys.executable, "-m", "neurocortex", "misp", "modules", "--misp-modules", misp_modules[0]],
        env=server.env | {"COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    lines = listed.stdout.splitlines()
    eql = next(line for line in lines if "│ eql " in line)
    assert "MISP_eql_0_1" in eql and "ip, filename" in eql and f"{tenant.org}: MISP_eql_0_1" in eql
    assert any("csvimport" in line and "import_mod" in line for line in lines)


def test_a_server_down_is_a_clear_failure(server: Server, tenant: Tenant, misp_modules) -> None:
    url, process = misp_modules
    process.terminate()
    process.wait(20)
    eql = _analyzer(tenant, "MISP_eql_0_1")
    done = run_and_wait(tenant.analyst, eql["id"], {"dataType": "ip", "data": "10.9.9.9"})
    assert done["status"] == "Failure"
    assert done["errorMessage"].startswith(f"misp-modules server unreachable: {url} (ConnectError")
    # still down when neurocortex restarts: the modules it offered stay, their analyzers are not obsolete
    server.stop()
    server.start()
    assert "MISP_eql_0_1" in {d["id"] for d in tenant.admin.get("/api/analyzerdefinition").json()}
    assert tenant.admin.get("/api/alert").json() == []
    done = run_and_wait(tenant.analyst, eql["id"], {"dataType": "ip", "data": "10.9.9.8"})
    assert done["errorMessage"].startswith(f"misp-modules server unreachable: {url} (ConnectError")
