"""The catalog (definitions from directories, catalog files and URLs; rescans; obsolete workers), enabling
workers with validated configurations, worker updates and base configurations (§2.4, §2.5, §3.4, §5.1, §5.2)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ROOT,
    TEST_WORKERS,
    Server,
    Tenant,
    drop_database,
    enable,
    make_server,
    new_tenant,
    run_and_wait,
)

WORKER_SCRIPT = """#!/usr/bin/env python3
import json, os, sys
job = sys.argv[1]
with open(os.path.join(job, "input", "input.json")) as handle:
    given = json.load(handle)
with open(os.path.join(job, "output", "output.json"), "w") as handle:
    json.dump({"success": True, "summary": {}, "artifacts": [], "operations": [],
               "full": {"script": os.path.basename(__file__), "data": given.get("data"), "config": given["config"]}},
              handle)
"""
DEFINITION_KEYS = {
    "id",
    "name",
    "version",
    "description",
    "dataTypeList",
    "author",
    "url",
    "license",
    "baseConfig",
    "configurationItems",
    "dockerImage",
    "command",
}


def definition(name: str, version: str = "1.0", **extra) -> dict:
    return {
        "name": name,
        "version": version,
        "author": "tests",
        "url": "https://example.invalid",
        "license": "AGPL-V3",
        "description": f"{name} for catalog tests",
        "dataTypeList": ["other", "domain"],
        "baseConfig": name,
        "configurationItems": [],
    } | extra


def write_worker(root: Path, directory: str, defs: dict[str, dict | str]) -> None:
    """`<root>/<directory>/run.py` and one JSON file per definition (a str is written as is)."""
    folder = root / directory
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.py").write_text(WORKER_SCRIPT)
    for file_name, content in defs.items():
        (folder / file_name).write_text(content if isinstance(content, str) else json.dumps(content))


class CatalogHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []
    body = b"[]"

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Extra analyzer and responder sources: a directory, an array catalog file, a single-object file and
    an http catalog served from a thread on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("catalogs")
    dircat, respcat, filecat = tmp / "dircat", tmp / "respcat", tmp / "filecat"
    (tmp / "outside").mkdir()
    (tmp / "outside" / "evil.py").write_text(WORKER_SCRIPT)
    write_worker(
        dircat,
        "Extra",
        {
            "Extra.json": definition(
                "Extra",
                config={"service": "extra"},
                configurationItems=[
                    {"name": "token", "description": "t", "type": "string", "multi": False, "required": False}
                ],
            ),
            "Broken_NoName.json": {
                k: v for k, v in definition("NoName", command="Extra/run.py").items() if k != "name"
            },
            "Broken_ItemType.json": definition(
                "BadItem",
                command="Extra/run.py",
                configurationItems=[
                    {"name": "n", "description": "d", "type": "integer", "multi": False, "required": False}
                ],
            ),
            "Broken_Escape.json": definition("Escape", command="../outside/evil.py"),
            "NotJson.json": "{this is not json",
        },
    )
    # the Extra definition names its program relative to the catalog root
    extra = json.loads((dircat / "Extra" / "Extra.json").read_text()) | {"command": "Extra/run.py"}
    (dircat / "Extra" / "Extra.json").write_text(json.dumps(extra))
    write_worker(dircat, "Other", {"Other.json": definition("Other", command="Other/run.py")})

    # two flavors sharing one base configuration, with overlapping items
    def item(name: str, description: str, required: bool = False) -> dict:
        return {
            "name": name,
            "description": description,
            "type": "string",
            "multi": False,
            "required": required,
        }

    write_worker(
        dircat,
        "Shared",
        {
            "SharedA.json": definition(
                "SharedA", command="Shared/run.py", baseConfig="Shared",
                configurationItems=[item("key", "the key", True), item("url", "from A")],
            ),
            "SharedB.json": definition(
                "SharedB", command="Shared/run.py", baseConfig="Shared",
                configurationItems=[item("url", "from B", True), item("region", "only B")],
            ),
        },
    )  # fmt: skip
    write_worker(
        respcat,
        "Resp",
        {"Resp.json": definition("Resp", command="Resp/run.py", dataTypeList=["thehive:case"])},
    )
    write_worker(
        filecat,
        "sub",
        {
            "array.json": [
                definition("FromArray1", "2.1", command="sub/run.py"),
                definition("FromArray2", command="sub/run.py"),
                {k: v for k, v in definition("NoVersion", command="sub/run.py").items() if k != "version"},
            ],
            "single.json": definition("FromSingle", command="sub/run.py"),
        },
    )

    CatalogHandler.requests = []
    CatalogHandler.body = json.dumps(
        [
            definition("RemoteCmd", command="Echo/echo.py"),
            definition("RemoteDocker", dockerImage="ghcr.io/thehive-project/remotedocker:1"),
            definition(
                "RemoteBoth", command="Echo/echo.py", dockerImage="ghcr.io/thehive-project/remoteboth:1"
            ),
        ]
    ).encode()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CatalogHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {
        "dircat": dircat,
        "respcat": respcat,
        "array": filecat / "sub" / "array.json",
        "single": filecat / "sub" / "single.json",
        "url": f"http://127.0.0.1:{httpd.server_address[1]}/analyzers.json",
    }
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalogs: dict) -> Iterator[Server]:
    """This module's server also reads the extra catalog sources (it replaces conftest's `server`)."""
    analyzers = [
        ROOT / "neurons" / "analyzers",
        TEST_WORKERS / "analyzers",
        catalogs["dircat"],
        catalogs["array"],
        f"file://{catalogs['single']}",
        catalogs["url"],
    ]
    responders = [ROOT / "neurons" / "responders", TEST_WORKERS / "responders", catalogs["respcat"]]
    srv = make_server(
        tmp_path_factory.mktemp("server"),
        extra_env={
            "NEUROCORTEX_ANALYZERS": ",".join(str(a) for a in analyzers),
            "NEUROCORTEX_RESPONDERS": ",".join(str(r) for r in responders),
        },
    )
    srv.start()
    yield srv
    srv.stop()
    db_url = srv.env.get("NEUROCORTEX_DATABASE_URL", "")
    if "nc_test_" in db_url:
        drop_database(db_url.rsplit("/", 1)[1])


def ok(response: httpx.Response, status: int = 200):
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json() if response.content else None


def attribute_errors(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "AttributeCheckingError", body
    return [(e["type"], e["name"]) for e in body["errors"]]


def definitions(client: httpx.Client, kind: str = "analyzer") -> dict[str, dict]:
    response = client.get(f"/api/{kind}definition")
    body = ok(response)
    assert response.headers["X-Total"] == str(len(body))
    return {d["id"]: d for d in body}


def wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


# -- definitions --


def test_definition_list_shape(superadmin: httpx.Client, tenant: Tenant) -> None:
    found = definitions(tenant.admin)
    assert definitions(superadmin).keys() == found.keys()
    assert tenant.analyst.get("/api/analyzerdefinition").status_code == 403
    for entry in found.values():
        assert set(entry) == DEFINITION_KEYS, entry
        assert "/" not in (entry["command"] or ""), entry  # the file name only, never a server path
    echo = found["Echo_1_0"]
    assert echo["command"] == "echo.py" and echo["dockerImage"] is None and echo["baseConfig"] == "Echo"
    assert echo["name"] == "Echo" and echo["version"] == "1.0" and "file" in echo["dataTypeList"]
    items = {i["name"]: i for i in echo["configurationItems"]}
    assert items["api_key"] == {
        "name": "api_key",
        "description": "A secret",
        "type": "string",
        "multi": False,
        "required": False,
    }
    assert items["level"]["defaultValue"] == "info" and items["limit"]["defaultValue"] == 5
    assert items["tags"]["multi"] is True
    responders = definitions(tenant.admin, "responder")
    assert responders["Tagger_1_0"]["configurationItems"][0]["required"] is True
    assert set(responders["Resp_1_0"]) == DEFINITION_KEYS and responders["Resp_1_0"]["command"] == "run.py"


def test_catalog_sources(tenant: Tenant, catalogs: dict) -> None:
    found = definitions(tenant.admin)
    # a directory: every valid definition loads, the invalid ones beside them are skipped
    assert {"Extra_1_0", "Other_1_0"} <= found.keys()
    for broken in ("NoName", "BadItem", "Escape"):
        assert not any(d["name"] == broken for d in found.values()), broken
    # a catalog file holding an array (invalid entries skipped), and a file:// URL holding one object
    assert {"FromArray1_2_1", "FromArray2_1_0", "FromSingle_1_0"} <= found.keys()
    assert not any(d["name"] == "NoVersion" for d in found.values())
    assert found["FromArray1_2_1"]["version"] == "2.1" and found["FromArray1_2_1"]["command"] == "run.py"
    # an http catalog was fetched: its docker definitions load even though this server has no docker
    # runner (a job on them says why it cannot run); a remote catalog may not give a command
    assert "/analyzers.json" in CatalogHandler.requests
    assert {d["name"] for d in found.values() if d["name"].startswith("Remote")} == {"RemoteDocker"}
    remote = found["RemoteDocker_1_0"]
    assert remote["dockerImage"] == "ghcr.io/thehive-project/remotedocker:1" and remote["command"] is None
    docker_only = enable(tenant.admin, "analyzer", "RemoteDocker_1_0")
    assert docker_only["dockerImage"] == remote["dockerImage"] and "command" not in docker_only
    job = run_and_wait(tenant.analyst, docker_only["id"], {"dataType": "other", "data": "x"})
    assert job["status"] == "Failure", job
    assert job["errorMessage"].startswith("Worker cannot be run: no runner can run it"), job
    assert "only the docker image ghcr.io/thehive-project/remotedocker:1" in job["errorMessage"], job
    # and every loaded local definition runs
    for definition_id in ("Extra_1_0", "FromArray1_2_1", "FromSingle_1_0"):
        worker = enable(tenant.admin, "analyzer", definition_id)
        job = run_and_wait(tenant.analyst, worker["id"], {"dataType": "other", "data": definition_id})
        assert job["status"] == "Success", job
        assert job["report"]["full"]["data"] == definition_id and job["report"]["full"]["script"] == "run.py"
    extra = ok(tenant.analyst.get("/api/analyzer/_search", params={"range": "all"}))
    assert "Extra_1_0" in {w["name"] for w in extra}


def test_catalog_cli(catalogs: dict) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROCORTEX_")} | {"COLUMNS": "300"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "neurocortex",
            "catalog",
            "list",
            "--analyzers",
            str(catalogs["dircat"]),
            "--analyzers",
            str(catalogs["array"]),
            "--responders",
            str(catalogs["respcat"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for definition_id in ("Extra_1_0", "Other_1_0", "FromArray1_2_1", "FromArray2_1_0", "Resp_1_0"):
        assert definition_id in out, out
    assert "analyzers (6)" in out and "responders (1)" in out  # Extra, Other, SharedA, SharedB + the array
    skipped = [line for line in out.splitlines() if line.startswith("skipped:")]
    assert any("NotJson.json" in line for line in skipped), out
    assert any("BadItem" in line for line in skipped) and any("Escape" in line for line in skipped), out
    assert any("NoVersion" in line for line in skipped), out


def test_rescan_and_obsolete_workers(superadmin: httpx.Client, catalogs: dict) -> None:
    org = new_tenant(superadmin)
    dircat, respcat = catalogs["dircat"], catalogs["respcat"]
    write_worker(
        dircat, "Added", {"Added.json": definition("Added", command="Added/run.py", config={"k": "v"})}
    )
    assert "Added_1_0" not in definitions(org.admin)
    scan = org.admin.post("/api/analyzerdefinition/scan")
    assert scan.status_code == 204 and scan.content == b""
    wait_for(lambda: "Added_1_0" in definitions(org.admin))

    added = enable(org.admin, "analyzer", "Added_1_0")
    resp = enable(org.admin, "responder", "Resp_1_0")
    job = run_and_wait(org.analyst, added["id"], {"dataType": "other", "data": "fresh"})
    assert job["status"] == "Success" and job["report"]["full"]["config"]["k"] == "v"
    assert ok(org.analyst.get("/api/alert")) == []

    # the definitions leave the catalog (their programs stay): a rescan makes the workers obsolete
    (dircat / "Added" / "Added.json").unlink()
    (respcat / "Resp" / "Resp.json").unlink()
    assert superadmin.post("/api/responderdefinition/scan").status_code == 204  # rescans both kinds
    wait_for(
        lambda: (
            "Added_1_0" not in definitions(org.admin)
            and "Resp_1_0" not in definitions(org.admin, "responder")
        )
    )
    assert ok(org.analyst.get("/api/alert")) == ["ObsoleteAnalyzers", "ObsoleteResponders"]
    assert ok(org.analyst.get(f"/api/analyzer/{added['id']}"))["workerDefinitionId"] == "Added_1_0"
    # obsolete workers still run, without the definition's static config
    job = run_and_wait(org.analyst, added["id"], {"dataType": "other", "data": "obsolete"}, force=1)
    assert job["status"] == "Success", job
    assert job["report"]["full"]["data"] == "obsolete" and "k" not in job["report"]["full"]["config"]
    action = run_and_wait(
        org.analyst, resp["id"], {"dataType": "thehive:case", "data": {"title": "c"}}, "responder"
    )
    assert action["status"] == "Success" and action["report"]["full"]["data"] == {"title": "c"}
    # other organizations are not alerted about this one's workers
    assert ok(new_tenant(superadmin).analyst.get("/api/alert")) == []


# -- enabling workers --


def test_worker_id_and_configuration_defaults(tenant: Tenant) -> None:
    echo = enable(tenant.admin, "analyzer", "Echo_1_0", configuration={"api_key": "k-123"})
    assert echo["id"] == hashlib.md5(f"{tenant.org}_Echo_1_0_analyzer".encode()).hexdigest()
    assert echo["analyzerDefinitionId"] == "Echo_1_0" and echo["workerDefinitionId"] == "Echo_1_0"
    assert "configuration" not in echo and echo["command"].endswith("/Echo/echo.py")
    configuration = ok(tenant.admin.get(f"/api/analyzer/{echo['id']}"))["configuration"]
    assert configuration == {
        "api_key": "k-123",
        "level": "info",
        "tags": [],
        "limit": 5,
        "verbose": None,
        "auto_extract_artifacts": False,
        "jobCache": 10,
        "jobTimeout": 30,
        "proxy_http": None,
        "proxy_https": None,
        "cacerts": None,
        "check_tlp": None,
        "max_tlp": None,
        "check_pap": None,
        "max_pap": None,
    }
    tagger = enable(tenant.admin, "responder", "Tagger_1_0", configuration={"tag": "t"})
    assert tagger["id"] == hashlib.md5(f"{tenant.org}_Tagger_1_0_responder".encode()).hexdigest()
    assert "analyzerDefinitionId" not in tagger and "maxTlp" in tagger and "maxPap" in tagger
    responder_configuration = ok(tenant.admin.get(f"/api/responder/{tagger['id']}"))["configuration"]
    assert responder_configuration == {
        "tag": "t",
        "proxy_http": None,
        "proxy_https": None,
        "cacerts": None,
        "jobTimeout": 30,
        "check_tlp": None,
        "max_tlp": None,
        "check_pap": None,
        "max_pap": None,
    }
    # the same name again is a conflict; another name is another worker
    conflict = tenant.admin.post("/api/organization/analyzer/Echo_1_0", json={"name": "Echo_1_0"})
    assert conflict.status_code == 400 and conflict.json()["type"] == "ConflictError"
    second = enable(tenant.admin, "analyzer", "Echo_1_0", name="Echo second", dataTypeList=["ip"])
    assert second["id"] == hashlib.md5(f"{tenant.org}_Echo second_analyzer".encode()).hexdigest()
    assert second["dataTypeList"] == ["ip"]


def test_configuration_validation(superadmin: httpx.Client) -> None:
    org = new_tenant(superadmin)

    def attempt(
        configuration, definition_id: str = "Echo_1_0", kind: str = "analyzer", **extra
    ) -> httpx.Response:
        return org.admin.post(
            f"/api/organization/{kind}/{definition_id}",
            json={"name": definition_id, "configuration": configuration} | extra,
        )

    assert attribute_errors(attempt({"limit": "five"})) == [
        ("InvalidFormatAttributeError", "configuration.limit")
    ]
    assert attribute_errors(attempt({"api_key": 42})) == [
        ("InvalidFormatAttributeError", "configuration.api_key")
    ]
    assert attribute_errors(attempt({"verbose": "yes"})) == [
        ("InvalidFormatAttributeError", "configuration.verbose")
    ]
    assert attribute_errors(attempt({"tags": "one"})) == [
        ("InvalidFormatAttributeError", "configuration.tags")
    ]
    assert attribute_errors(attempt({"tags": ["one", 2]})) == [
        ("InvalidFormatAttributeError", "configuration.tags")
    ]
    assert attribute_errors(attempt({"max_tlp": "2"})) == [
        ("InvalidFormatAttributeError", "configuration.max_tlp")
    ]
    unknown = attribute_errors(attempt({"nope": 1}))
    assert len(unknown) == 1 and unknown[0][0] == "UnknownAttributeError" and unknown[0][1].endswith("nope")
    both = attribute_errors(attempt({"nope": 1, "limit": False}))
    assert {kind for kind, _ in both} == {"UnknownAttributeError", "InvalidFormatAttributeError"}
    missing = attribute_errors(attempt({}, "Tagger_1_0", "responder"))
    assert missing == [("MissingAttributeError", "configuration.tag")]
    assert attribute_errors(attempt({"tag": None}, "Tagger_1_0", "responder"))[0][0] in (
        "MissingAttributeError",
        "InvalidFormatAttributeError",
    )
    assert attribute_errors(attempt("not an object"))[0][0] == "InvalidFormatAttributeError"
    # top-level fields
    assert attribute_errors(attempt({}, unknownField=1)) == [("UnknownAttributeError", "unknownField")]
    assert attribute_errors(attempt({}, rateUnit="Week"))[0] == ("InvalidFormatAttributeError", "rateUnit")
    assert attribute_errors(attempt({}, rate="lots"))[0] == ("InvalidFormatAttributeError", "rate")
    assert attribute_errors(org.admin.post("/api/organization/analyzer/Echo_1_0", json={}))[0] == (
        "MissingAttributeError",
        "name",
    )
    # nothing was created by the refused attempts
    assert ok(org.admin.get("/api/analyzer", params={"range": "all"})) == []
    unknown_definition = org.admin.post("/api/organization/analyzer/NoSuch_1_0", json={"name": "NoSuch_1_0"})
    assert unknown_definition.status_code == 404 and unknown_definition.json()["type"] == "NotFoundError"
    assert (
        org.analyst.post("/api/organization/analyzer/Echo_1_0", json={"name": "Echo_1_0"}).status_code == 403
    )

    # global items, TLP/PAP items and multi values are accepted; explicit nulls stay null
    accepted = {
        "api_key": None,
        "tags": ["a", "b"],
        "verbose": True,
        "check_tlp": True,
        "max_tlp": 2,
        "check_pap": False,
        "max_pap": 3,
        "proxy_http": "http://proxy:3128",
        "cacerts": "---PEM---",
        "jobTimeout": 5,
        "jobCache": 0,
        "auto_extract_artifacts": True,
    }
    echo = ok(attempt(accepted, rate=10, rateUnit="Hour", jobCache=1, jobTimeout=2), 201)
    assert (echo["rate"], echo["rateUnit"], echo["jobCache"], echo["jobTimeout"]) == (10, "Hour", 1, 2)
    stored = ok(org.admin.get(f"/api/analyzer/{echo['id']}"))["configuration"]
    assert stored == accepted | {"level": "info", "limit": 5, "proxy_https": None}


def test_configuration_only_for_orgadmins(tenant: Tenant) -> None:
    worker = enable(
        tenant.admin, "analyzer", "NoOp_1_0", name="NoOp visibility", configuration={"max_tlp": 1}
    )
    assert "configuration" not in worker
    for client in (tenant.analyst, tenant.reader):
        assert "configuration" not in ok(client.get(f"/api/analyzer/{worker['id']}"))
        for entry in ok(client.get("/api/analyzer", params={"range": "all"})):
            assert "configuration" not in entry
    assert ok(tenant.admin.get(f"/api/analyzer/{worker['id']}"))["configuration"]["max_tlp"] == 1
    assert all("configuration" in w for w in ok(tenant.admin.get("/api/analyzer", params={"range": "all"})))
    assert all("configuration" not in w for w in ok(tenant.admin.get("/api/analyzer/type/ip")))


def test_update_and_delete(tenant: Tenant) -> None:
    worker = enable(
        tenant.admin, "analyzer", "Sleeper_1_0", name="Sleeper updates", rate=3, rateUnit="Minute", jobCache=4
    )
    path = f"/api/analyzer/{worker['id']}"
    for field, value in (
        ("version", "9.9"),
        ("workerDefinitionId", "Echo_1_0"),
        ("command", "/bin/sh"),
        ("type", "responder"),
        ("organization", "cortex"),
        ("analyzerDefinitionId", "x"),
    ):
        assert attribute_errors(tenant.admin.patch(path, json={field: value})) == [
            ("UpdateReadOnlyAttributeError", field)
        ]
    assert attribute_errors(tenant.admin.patch(path, json={"whatever": 1})) == [
        ("UnknownAttributeError", "whatever")
    ]
    assert attribute_errors(tenant.admin.patch(path, json={"rateUnit": "Fortnight"}))[0][1] == "rateUnit"
    assert tenant.analyst.patch(path, json={"rate": 1}).status_code == 403
    unchanged = ok(tenant.admin.get(path))
    assert unchanged["rate"] == 3 and unchanged["version"] == "1.0"

    updated = ok(
        tenant.admin.patch(path, json={"rate": None, "rateUnit": None, "jobTimeout": 7, "jobCache": 0})
    )
    assert "rate" not in updated and "rateUnit" not in updated
    assert updated["jobTimeout"] == 7 and updated["jobCache"] == 0 and "configuration" in updated
    assert (
        "rate" not in ok(tenant.admin.get(path))
        and ok(tenant.admin.get(path))["updatedBy"] == f"{tenant.org}-admin"
    )
    assert ok(tenant.admin.patch(path, json={"dataTypeList": ["ip"]}))["dataTypeList"] == ["ip"]
    assert worker["id"] in {w["id"] for w in ok(tenant.reader.get("/api/analyzer/type/ip"))}
    assert worker["id"] not in {w["id"] for w in ok(tenant.reader.get("/api/analyzer/type/domain"))}

    assert tenant.analyst.delete(path).status_code == 403
    deleted = tenant.admin.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    for response in (
        tenant.admin.get(path),
        tenant.admin.delete(path),
        tenant.admin.patch(path, json={"rate": 1}),
        tenant.analyst.post(f"{path}/run", json={"dataType": "ip", "data": "192.0.2.1"}),
    ):
        assert response.status_code == 404 and response.json()["type"] == "NotFoundError"


# -- base configurations --


@pytest.mark.parametrize("kind", ["analyzer", "responder"])
def test_base_configuration_list(tenant: Tenant, kind: str) -> None:
    response = tenant.admin.get(f"/api/{kind}config")
    configs = ok(response)
    assert isinstance(configs, list) and configs[0]["name"] == "global"
    names = [c["name"] for c in configs]
    assert names[1:] == sorted(names[1:])
    global_items = {i["name"] for i in configs[0]["configurationItems"]}
    assert {"proxy_http", "proxy_https", "cacerts", "jobTimeout"} <= global_items
    assert ({"jobCache", "auto_extract_artifacts"} <= global_items) is (kind == "analyzer")
    assert not {"check_tlp", "max_tlp", "check_pap", "max_pap"} & global_items
    for config in configs:
        assert set(config) == {"name", "workers", "configurationItems", "config"}
        assert config["configurationItems"], config  # base configs without items are not listed
        assert all(item["required"] is False for item in config["configurationItems"])
    if kind == "analyzer":
        echo = next(c for c in configs if c["name"] == "Echo")
        assert echo["workers"] == ["Echo"]
        assert [i["name"] for i in echo["configurationItems"]] == [
            "api_key",
            "level",
            "tags",
            "limit",
            "verbose",
        ]
        assert "Hostile" not in names and "NoOp" not in names
    else:
        tagger = next(c for c in configs if c["name"] == "Tagger")
        assert tagger["configurationItems"][0]["name"] == "tag"  # required in the definition, not here
    assert tenant.analyst.get(f"/api/{kind}config").status_code == 403


def test_base_configuration_merges_flavors(tenant: Tenant) -> None:
    shared = ok(tenant.admin.get("/api/analyzerconfig/Shared"))
    assert shared["workers"] == ["SharedA", "SharedB"] and shared["config"] == {}
    assert [(i["name"], i["description"], i["required"]) for i in shared["configurationItems"]] == [
        ("key", "the key", False),
        ("url", "from A", False),
        ("region", "only B", False),
    ]
    # the definitions themselves keep their own requirements
    found = definitions(tenant.admin)
    assert [i["required"] for i in found["SharedA_1_0"]["configurationItems"]] == [True, False]
    response = tenant.admin.post("/api/organization/analyzer/SharedB_1_0", json={"name": "SharedB_1_0"})
    assert attribute_errors(response) == [("MissingAttributeError", "configuration.url")]


def test_base_configuration_get_and_patch(superadmin: httpx.Client) -> None:
    org = new_tenant(superadmin)
    assert ok(org.admin.get("/api/analyzerconfig/Echo"))["config"] == {}
    missing = org.admin.get("/api/analyzerconfig/NoSuchConfig")
    assert missing.status_code == 404 and missing.json() == {
        "type": "NotFoundError",
        "message": "config NoSuchConfig not found",
    }
    assert org.admin.patch("/api/analyzerconfig/NoSuchConfig", json={"config": {}}).status_code == 404

    saved = ok(
        org.admin.patch(
            "/api/analyzerconfig/Echo",
            json={
                "config": {
                    "api_key": "base-key",
                    "limit": 3,
                    "tags": ["x"],
                    "verbose": None,
                    "unknown": "dropped",
                }
            },
        )
    )
    assert saved["name"] == "Echo" and saved["config"] == {"api_key": "base-key", "limit": 3, "tags": ["x"]}
    assert ok(org.admin.get("/api/analyzerconfig/Echo"))["config"] == saved["config"]
    listed = next(c for c in ok(org.admin.get("/api/analyzerconfig")) if c["name"] == "Echo")
    assert listed["config"] == saved["config"]
    # a second PATCH replaces the stored config
    assert ok(org.admin.patch("/api/analyzerconfig/Echo", json={"config": {"level": "safe"}}))["config"] == {
        "level": "safe"
    }
    for bad in (
        {"config": {"limit": "three"}},
        {"config": {"tags": "x"}},
        {"config": "text"},
        {"config": [1]},
        {},
    ):
        response = org.admin.patch("/api/analyzerconfig/Echo", json=bad)
        assert response.status_code == 400, (bad, response.text)
    assert ok(org.admin.get("/api/analyzerconfig/Echo"))["config"] == {"level": "safe"}
    glob = ok(
        org.admin.patch(
            "/api/analyzerconfig/global", json={"config": {"jobTimeout": 12, "proxy_http": "http://p"}}
        )
    )
    assert glob["config"] == {"jobTimeout": 12, "proxy_http": "http://p"}
    assert ok(org.admin.patch("/api/responderconfig/Tagger", json={"config": {"tag": "x"}}))["config"] == {
        "tag": "x"
    }
    assert ok(org.admin.get("/api/responderconfig/Tagger"))["config"] == {"tag": "x"}
    assert org.analyst.patch("/api/analyzerconfig/Echo", json={"config": {}}).status_code == 403
    # base configs only pre-fill the UI: a worker enabled afterwards keeps its own configuration
    worker = enable(org.admin, "analyzer", "Echo_1_0", configuration={})
    assert ok(org.admin.get(f"/api/analyzer/{worker['id']}"))["configuration"]["level"] == "info"
