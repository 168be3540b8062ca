"""cortex4py 2.1.0 from PyPI drives a whole flow against the real server over HTTP (clients.md §1)."""

from __future__ import annotations

import secrets

import pytest
from cortex4py.api import Api
from cortex4py.exceptions import (
    AuthenticationError,
    AuthorizationError,
    InvalidInputError,
    NotFoundError,
)
from cortex4py.query import (
    And,
    Between,
    Child,
    Contains,
    Eq,
    Gt,
    Gte,
    Id,
    In,
    Lt,
    Lte,
    Not,
    Or,
    Parent,
    ParentId,
    String,
    Type,
)

from tests.conftest import Server


@pytest.fixture(scope="module")
def superapi(server: Server, superadmin) -> Api:
    key = superadmin.headers["Authorization"].removeprefix("Bearer ")
    return Api(server.url, key)


@pytest.fixture(scope="module")
def org(superapi: Api) -> dict:
    """An organization and its orgadmin, created and keyed through cortex4py."""
    name = f"c4py{secrets.token_hex(3)}"
    created = superapi.organizations.create(
        {"name": name, "description": "cortex4py flow", "status": "Active"}
    )
    assert created.id == name and created.status == "Active"
    login = f"{name}-admin"
    user = superapi.users.create(
        {
            "login": login,
            "name": "Flow Admin",
            "roles": ["read", "analyze", "orgadmin"],
            "status": "Ok",
            "organization": name,
        }  # fmt: skip
    )
    assert user.id == login and user.hasKey is False and user.hasPassword is False
    assert superapi.users.set_password(login, "first-Password1") is True
    key = superapi.users.renew_key(login)
    assert len(key) == 32
    assert superapi.users.get_key(login) == key
    return {"name": name, "login": login, "key": key}


@pytest.fixture(scope="module")
def api(server: Server, org: dict) -> Api:
    return Api(server.url, org["key"])


def test_organizations_and_users(superapi: Api, org: dict, api: Api) -> None:
    name, login = org["name"], org["login"]
    assert superapi.organizations.get_by_id(name).description == "cortex4py flow"
    found = superapi.organizations.find_all(Eq("name", name), range="all", sort="-createdAt")
    assert [o.id for o in found] == [name]
    assert superapi.organizations.find_one_by(Eq("name", name)).id == name
    assert superapi.organizations.count(Eq("status", "Active")) >= 2  # cortex and ours
    assert superapi.organizations.update(name, {"description": "updated"}).description == "updated"

    user = superapi.users.get_by_id(login)
    assert user.organization == name and user.hasKey is True and user.hasPassword is True
    assert [u.id for u in superapi.users.find_all(Eq("organization", name), range="all")] == [login]
    assert superapi.users.find_one_by(And(Eq("organization", name), Eq("status", "Ok"))).id == login
    members = superapi.organizations.get_users(name, {}, range="all", sort="-createdAt")
    assert [u.id for u in members] == [login]
    assert superapi.users.update(login, {"name": "Renamed"}).name == "Renamed"

    # the user changes their own password with their own key
    assert api.users.change_password(login, "first-Password1", "second-Password2") is True
    with pytest.raises(AuthorizationError):
        api.users.change_password(login, "wrong", "third-Password3")


def test_analyzer_lifecycle_and_jobs(api: Api, org: dict, tmp_path) -> None:
    org_name = org["name"]
    definitions = {d.id: d for d in api.analyzers.definitions()}
    assert "Echo_1_0" in definitions and definitions["Echo_1_0"].dataTypeList
    config = {
        "configuration": {"api_key": "dummy", "check_tlp": False, "max_tlp": 2, "check_pap": False, "max_pap": 2,
                          "auto_extract_artifacts": True},
        "jobCache": 10, "jobTimeout": 5, "rate": 1000, "rateUnit": "Day",
    }  # fmt: skip
    analyzer = api.analyzers.enable("Echo_1_0", config)
    assert analyzer.name == "Echo_1_0" and analyzer.rate == 1000
    assert api.analyzers.get_by_id(analyzer.id).name == "Echo_1_0"
    assert api.analyzers.get_by_name("Echo_1_0").id == analyzer.id
    assert analyzer.id in [a.id for a in api.analyzers.get_by_type("domain")]
    assert analyzer.id in [a.id for a in api.analyzers.find_all({}, range="all")]
    assert analyzer.id in [a.id for a in api.organizations.get_analyzers()]
    updated = api.analyzers.update(analyzer.id, {"rate": 100, "rateUnit": "Day", "jobCache": None,
                                                 "configuration": config["configuration"]})  # fmt: skip
    assert updated.rate == 100 and not hasattr(updated, "jobCache")
    assert updated.configuration["api_key"] == "dummy"

    observable = {"data": "example.com", "dataType": "domain", "tlp": 1,
                  "message": "cortex4py smoke", "parameters": {"key1": "value1", "key2": True}}  # fmt: skip
    job = api.analyzers.run_by_name("Echo_1_0", observable, force=1)
    assert job.status in ("Waiting", "InProgress", "Success") and job.dataType == "domain"
    assert api.jobs.get_by_id(job.id).id == job.id

    done = api.jobs.get_report_async(job.id)  # atMost=Inf: waits until the job has ended
    assert done.status == "Success", done.report
    assert done.report["full"]["data"] == "example.com"
    assert done.report["full"]["parameters"] == {"key1": "value1", "key2": True}
    levels = {t["predicate"]: t["level"] for t in done.report["summary"]["taxonomies"]}
    assert levels == {"Type": "info", "Length": "safe"}
    assert api.jobs.get_report(job.id).report["success"] is True
    assert api.jobs.get_report_async(job.id, timeout="1minute").status == "Success"

    artifacts = api.jobs.get_artifacts(job.id)
    extracted = {(a.dataType, a.data) for a in artifacts}
    assert ("mail", "evil@bad.example") in extracted and ("url", "https://malicious.example/x") in extracted
    assert all(a.tlp == 1 and a.tags == [] for a in artifacts)

    # a file observable: multipart with the file part named `data`
    sample = tmp_path / "sample.txt"
    sample.write_text("hello from a file, see 198.51.100.23\n")
    file_job = api.analyzers.run_by_id(
        analyzer.id,
        {
            "data": str(sample),
            "dataType": "file",
            "tlp": 1,
            "message": "file smoke",
            "parameters": {"k": "v"},
        },  # fmt: skip
        force=1,
    )
    assert file_job.attachment["name"] == "sample.txt" and len(file_job.attachment["hashes"]) == 3
    file_done = api.jobs.get_report_async(file_job.id, timeout="1minute")
    assert file_done.status == "Success", file_done.report
    assert file_done.report["full"]["file_content"].startswith("hello from a file")
    assert file_done.report["full"]["filename"] == "sample.txt"
    file_artifacts = [a for a in file_done.report["artifacts"] if a["dataType"] == "file"]
    assert len(file_artifacts) == 1 and file_artifacts[0]["attachment"]["id"] == file_job.attachment["id"]
    assert file_artifacts[0]["tags"] == ["copy"] and file_artifacts[0]["tlp"] == 1

    # every query helper reaches the server and selects what it should
    both = {job.id, file_job.id}

    def ids(query, **kwargs) -> set[str]:
        return {j.id for j in api.jobs.find_all(query, range="all", sort="-createdAt", **kwargs)}

    assert ids(Eq("dataType", "domain")) >= {job.id} and file_job.id not in ids(Eq("dataType", "domain"))
    assert ids(Gt("createdAt", job.createdAt - 1)) >= both
    assert job.id in ids(Gte("createdAt", job.createdAt)) and job.id not in ids(
        Lt("createdAt", job.createdAt)
    )
    assert job.id in ids(Lte("createdAt", job.createdAt))
    assert ids(And(Eq("workerId", analyzer.id), Eq("dataType", "file"))) == {file_job.id}
    assert ids(Or(Id(job.id), Id(file_job.id))) == both
    assert job.id not in ids(Not(Eq("dataType", "domain")))
    assert ids(In("dataType", ["domain", "file"])) >= both
    assert ids(Contains("attachment")) >= {file_job.id} and job.id not in ids(Contains("attachment"))
    assert ids(Between("tlp", 0, 2)) >= both
    assert ids(Type("job")) >= both and not ids(Type("organization"))
    assert ids(String("dataType:file")) >= {file_job.id} and job.id not in ids(String("dataType:file"))
    assert ids(Child("report", Eq("id", "no-such-report"))) == set()
    assert job.id in ids(Child("report", {}))
    # workers are children of their organization
    mine = api.analyzers.find_all(ParentId("organization", org_name), range="all")
    assert analyzer.id in [a.id for a in mine]
    assert api.analyzers.find_all(Parent("organization", Eq("name", "cortex")), range="all") == []
    assert api.jobs.find_one_by(Eq("workerId", analyzer.id), sort="-createdAt").id == file_job.id

    assert api.jobs.delete(job.id) is True
    assert api.jobs.get_by_id(job.id).status == "Deleted"
    assert job.id not in ids(Eq("workerId", analyzer.id))

    assert api.analyzers.disable(analyzer.id) is True
    with pytest.raises(NotFoundError):
        api.analyzers.get_by_id(analyzer.id)


def test_responder_flow(api: Api) -> None:
    definitions = {d.id for d in api.responders.definitions()}
    assert "Tagger_1_0" in definitions
    responder = api.responders.enable("Tagger_1_0", {"configuration": {"tag": "from-c4py"}})
    assert responder.id in [r.id for r in api.responders.get_by_type("thehive:case")]
    case = {"_id": "~4096", "_type": "case", "title": "Smoke case", "caseId": 42, "tags": ["a"]}
    job = api.responders.run_by_name("Tagger_1_0", {"dataType": "thehive:case", "tlp": 2, "message": "smoke",
                                                    "parameters": {"user": "smoke"}, "data": case})  # fmt: skip
    assert job.data == case
    done = api.jobs.get_report_async(job.id, timeout="1minute")
    assert done.status == "Success", done.report
    assert done.report["full"]["received"] == case
    assert done.report["operations"][0] == {"type": "AddTagToCase", "tag": "from-c4py"}
    assert api.responders.disable(responder.id) is True


def test_error_classes(server: Server, api: Api, superapi: Api, org: dict) -> None:
    with pytest.raises(AuthenticationError):
        Api(server.url, "not-a-valid-key-not-a-valid-key!").organizations.get_by_id(org["name"])
    with pytest.raises(AuthorizationError):
        api.organizations.count({})  # orgadmin: _stats needs superadmin
    with pytest.raises(NotFoundError):
        api.jobs.get_by_id("no-such-job")
    analyzer = api.analyzers.enable("Echo_1_0", {"name": "Echo_errors", "configuration": {}})
    with pytest.raises(InvalidInputError):  # data null → 400
        api.analyzers.run_by_id(analyzer.id, {"dataType": "domain", "data": None})
    with pytest.raises(InvalidInputError):  # enabling the same name twice → 400 ConflictError
        api.analyzers.enable("Echo_1_0", {"name": "Echo_errors", "configuration": {}})


def test_revoke_and_lock(server: Server, superapi: Api, org: dict) -> None:
    login = f"{org['name']}-temp"
    superapi.users.create({"login": login, "name": "Temp", "roles": ["read"], "organization": org["name"]})
    key = superapi.users.renew_key(login)
    temp = Api(server.url, key)
    assert temp.jobs.find_all({}, range="all")  # a reader of the organization sees its jobs
    assert superapi.users.revoke_key(login) is True
    with pytest.raises(AuthenticationError):
        temp.jobs.find_all({})
    key = superapi.users.renew_key(login)
    assert superapi.users.lock(login).status == "Locked"
    with pytest.raises(AuthenticationError):
        Api(server.url, key).jobs.find_all({})
    assert superapi.organizations.delete(org["name"]) is True
    assert superapi.organizations.get_by_id(org["name"]).status == "Locked"
    with pytest.raises(AuthenticationError):  # every user of a locked organization is refused
        Api(server.url, org["key"]).jobs.find_all({})
