"""The search DSL compiler on real databases: SQLite and PostgreSQL, the same rows, the same answers.

PostgreSQL runs on a throw-away database created for this module (NEUROCORTEX_TEST_POSTGRES_URL points
at the server; set it to "" to skip the PostgreSQL half).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from neurocortex.errors import SearchError
from neurocortex.store import lucene, tables
from neurocortex.store.query import (
    DEFAULT_LIMIT,
    MAX_TERMS,
    compile_query,
    compile_stats,
    order_by,
    parse_range,
    run_stats,
    wildcard_to_like,
)
from neurocortex.store.search_models import (
    ARTIFACT,
    JOB,
    MODELS,
    ORGANIZATION,
    REPORT,
    SECRET_OR_RAW_COLUMNS,
    USER,
    WORKER,
    FieldSpec,
    children_of,
)

# The engines live on the session loop, so the tests that use them must run there too.
on_db = pytest.mark.asyncio(loop_scope="session")

POSTGRES_URL = os.environ.get(
    "NEUROCORTEX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

# --- the data set -------------------------------------------------------------------------------

HOUR = 3_600_000
DAY = 24 * HOUR
D0 = 1_700_006_400_000  # 2023-11-15T00:00:00Z, a Wednesday
T0 = D0 - 10 * DAY

SHA256_A, SHA1_A, MD5_A = "a" * 64, "b" * 40, "c" * 32
SHA256_B, SHA1_B, MD5_B = "d" * 64, "e" * 40, "f" * 32
SHA256_C, SHA1_C, MD5_C = "1" * 64, "2" * 40, "3" * 32
INJECTION = "Robert'); DROP TABLE job;--"
TRICKY_URL = "http://example.com/a%b_c\\d"


def _system(created_at: int, by: str = "admin", **extra: Any) -> dict[str, Any]:
    return {"createdAt": created_at, "createdBy": by, **extra}


ORGANIZATIONS = [
    {"id": "cortex", "description": "Default organization", "status": "Active", **_system(T0)},
    {"id": "demo", "description": "Demo organization for testing", "status": "Active", **_system(T0 + 1)},
    {
        "id": "acme",
        "description": "ACME corporation (locked)",
        "status": "Locked",
        **_system(T0 + 2, updatedAt=T0 + 5, updatedBy="admin"),
    },
]

USERS = [
    {"id": "admin", "name": "Administrator", "roles": ["superadmin"], "status": "Ok", "organization": "cortex",
     "key_hash": "kh-admin", "key_encrypted": "secret-admin", "password": "argon2-admin", **_system(T0 + 10)},
    {"id": "alice", "name": "Alice Liddell", "roles": ["read", "analyze", "orgadmin"], "status": "Ok",
     "organization": "demo", "password": "argon2-alice", **_system(T0 + 20)},
    {"id": "bob", "name": "Bob", "roles": ["read"], "status": "Locked", "organization": "demo",
     **_system(T0 + 30, "alice")},
    {"id": "carol", "name": "Carol", "roles": ["read", "analyze"], "status": "Ok", "organization": "acme",
     "key_hash": "kh-carol", "key_encrypted": "secret-carol", **_system(T0 + 40)},
]  # fmt: skip

_REPO = "https://github.com/TheHive-Project/Cortex-Analyzers"
WORKERS = [
    {"id": "w-abuse", "organization": "demo", "name": "Abuse_Finder_3_0", "type": "analyzer", "version": "3.0",
     "workerDefinitionId": "Abuse_Finder_3_0",
     "description": "Find abuse contacts associated with domain names, URLs, IPs and email addresses.",
     "author": "CERT-BDF", "url": _REPO, "license": "AGPL-V3",
     "command": "/opt/Cortex-Analyzers/analyzers/Abuse_Finder/abusefinder.py", "dockerImage": None,
     "dataTypeList": ["ip", "domain", "fqdn", "url", "mail"], "baseConfig": "Abuse_Finder",
     "configuration": '{"secret": "s3cr3t"}', "rate": 1000, "rateUnit": "Day", "jobCache": 10.0,
     "jobTimeout": 30.0, **_system(T0 + 100, "alice")},
    {"id": "w-file", "organization": "demo", "name": "File_Info_8_0", "type": "analyzer", "version": "8.0",
     "workerDefinitionId": "File_Info_8_0",
     "description": "Parse files in several formats such as OLE and OpenXML to detect VBA macros.",
     "author": "TheHive-Project", "url": _REPO, "license": "AGPL-V3", "command": None,
     "dockerImage": "cortexneurons/fileinfo:8", "dataTypeList": ["file"], "baseConfig": "File_Info",
     "configuration": "{}", "rate": None, "rateUnit": None, "jobCache": None, "jobTimeout": 30.0,
     **_system(T0 + 200, "alice")},
    {"id": "w-mailer", "organization": "demo", "name": "Mailer_1_0", "type": "responder", "version": "1.0",
     "workerDefinitionId": "Mailer_1_0",
     "description": "Send an email with information from a TheHive case or alert.",
     "author": "CERT-BDF", "url": _REPO, "license": "AGPL-V3",
     "command": "/opt/Cortex-Analyzers/responders/Mailer/mailer.py", "dockerImage": None,
     "dataTypeList": ["thehive:case", "thehive:alert"], "baseConfig": "Mailer", "configuration": "{}",
     "rate": None, "rateUnit": None, "jobCache": None, "jobTimeout": None, **_system(T0 + 300, "alice")},
    {"id": "w-vt", "organization": "acme", "name": "VirusTotal_GetReport_3_1", "type": "analyzer",
     "version": "3.1", "workerDefinitionId": "VirusTotal_GetReport_3_1",
     "description": "Get the latest VirusTotal report for a file, hash, domain or an IP address.",
     "author": "CERT-BDF", "url": _REPO, "license": "AGPL-V3", "command": None,
     "dockerImage": "cortexneurons/virustotal_getreport:3", "dataTypeList": ["file", "hash", "domain", "ip"],
     "baseConfig": "VirusTotal", "configuration": '{"key": "vt"}', "rate": 4, "rateUnit": "Minute",
     "jobCache": 5.0, "jobTimeout": 15.0, **_system(T0 + 400, "carol")},
]  # fmt: skip


def _attachment(name: str, sha256: str, sha1: str, md5: str, size: int, content_type: str) -> dict[str, Any]:
    return {
        "name": name,
        "hashes": [sha256, sha1, md5],
        "size": size,
        "contentType": content_type,
        "id": sha256,
    }


def _job(
    job_id: str, worker: dict[str, Any], status: str, data_type: str, created: int, **extra: Any
) -> dict:
    finished = status in ("Success", "Failure", "Deleted")
    row = {
        "id": job_id,
        "organization": worker["organization"],
        "workerId": worker["id"],
        "workerName": worker["name"],
        "workerDefinitionId": worker["workerDefinitionId"],
        "type": worker["type"],
        "status": status,
        "dataType": data_type,
        "tlp": 2,
        "pap": 2,
        "message": "",
        "parameters": '{"secret": "never searched"}',
        "cacheTag": f"tag-{job_id}",
        "startDate": created + 100 if finished else None,
        "endDate": created + 5000 if finished else None,
        "input": '{"config": {"key": "secret"}}' if status == "Failure" else None,
        **_system(created, "carol" if worker["organization"] == "acme" else "alice"),
    }
    return row | extra


ABUSE, FILE_INFO, MAILER, VT = WORKERS
JOBS = [
    # job01 has an SQL NULL attachment, job02 a JSON null one, job08 none at all (column left out)
    _job("job01", ABUSE, "Success", "ip", D0 + HOUR, data="8.8.8.8", tlp=0, attachment=sa.null()),
    _job("job02", ABUSE, "Failure", "domain", D0 + 2 * HOUR, data="example.com", attachment=sa.JSON.NULL,
         errorMessage="Connection refused by whois.example.net"),
    _job("job03", FILE_INFO, "Success", "file", D0 + DAY + HOUR,
         attachment=_attachment("invoice.pdf", SHA256_A, SHA1_A, MD5_A, 1024, "application/pdf")),
    _job("job04", MAILER, "Waiting", "thehive:case", D0 + DAY + 2 * HOUR,
         data='{"_id": "~4096", "title": "Phishing campaign"}', label="#12 Phishing campaign",
         message="Phishing campaign (case #12)"),
    _job("job05", ABUSE, "Deleted", "ip", D0 + 2 * DAY + HOUR, data="1.1.1.1", tlp=1),
    _job("job06", VT, "InProgress", "file", D0 + 2 * DAY + 2 * HOUR, tlp=3, pap=3, startDate=D0 + 2 * DAY + 3 * HOUR,
         attachment=_attachment("evil.exe", SHA256_B, SHA1_B, MD5_B, 5_000_000, "application/x-dosexec")),
    _job("job07", ABUSE, "Success", "url", D0 + 3 * DAY + HOUR, data=TRICKY_URL, tlp=1, pap=1, message=INJECTION),
    _job("job08", ABUSE, "Waiting", "ip", D0 + 3 * DAY + HOUR, data="8.8.8.8"),
]  # fmt: skip
ALL_JOBS = {j["id"] for j in JOBS}

REPORTS = [
    {"id": f"rep{j[3:]}", "job": j, "full": '{"secret": 1}', "summary": "{}", "operations": "[]",
     **_system(next(x["createdAt"] for x in JOBS if x["id"] == j) + 5000, "alice")}
    for j in ("job01", "job02", "job03", "job07")
]  # fmt: skip

ARTIFACTS = [
    {"id": "art01", "report": "rep01", "job": "job01", "dataType": "ip", "data": "8.8.4.4", "tlp": 0,
     "tags": ["dns", "google"], "message": "secondary resolver", **_system(D0 + HOUR + 6000, "alice")},
    {"id": "art02", "report": "rep01", "job": "job01", "dataType": "domain", "data": "dns.google", "tlp": 0,
     "tags": ["dns"], "message": None, **_system(D0 + HOUR + 6001, "alice")},
    {"id": "art03", "report": "rep03", "job": "job03", "dataType": "file", "data": None, "tlp": 2, "tags": [],
     "attachment": _attachment("macro.vba", SHA256_C, SHA1_C, MD5_C, 2048, "text/plain"),
     **_system(D0 + DAY + HOUR + 6000, "alice")},
    {"id": "art04", "report": "rep07", "job": "job07", "dataType": "hash",
     "data": "44d88612fea8a8f36de82e1278abb02f", "tlp": 1, "tags": ["malware", "100%_sure"],
     "message": "EICAR test file", **_system(D0 + 3 * DAY + HOUR + 6000, "alice")},
]  # fmt: skip

ROWS = [
    (tables.organization, ORGANIZATIONS),
    (tables.user, [{"preferences": "{}", **u} for u in USERS]),
    (tables.worker, WORKERS),
    (tables.job, JOBS),
    (tables.report, REPORTS),
    (tables.artifact, ARTIFACTS),
]


# --- databases ----------------------------------------------------------------------------------


async def _fill(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
        for table, rows in ROWS:
            for row in rows:  # one by one: rows leave different columns out
                await conn.execute(table.insert().values(**row))


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="session",
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not POSTGRES_URL, reason="NEUROCORTEX_TEST_POSTGRES_URL is empty"),
        ),
    ],
)
async def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('query') / 'query.db'}")
        await _fill(engine)
        yield engine
        await engine.dispose()
        return
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"neurocortex_query_{secrets.token_hex(6)}"
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(make_url(POSTGRES_URL).set(database=name))
    try:
        await _fill(engine)
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def search(
    db: AsyncEngine, model: str, query: Any, sort: Any = None, range_: str | None = "all"
) -> list[str]:
    m = MODELS[model]
    offset, limit = parse_range(range_)
    statement = (
        sa.select(m.table.c.id)
        .where(compile_query(m, query))
        .order_by(*order_by(m, sort))
        .offset(offset)
        .limit(limit)
    )
    async with db.connect() as conn:
        return list((await conn.scalars(statement)).all())


async def found(db: AsyncEngine, model: str, query: Any) -> set[str]:
    ids = await search(db, model, query)
    assert len(ids) == len(set(ids))
    return set(ids)


def _cases(*cases: tuple[str, Any, set[str]]) -> list[Any]:
    return [pytest.param(m, q, e, id=f"{m}:{json.dumps(q, default=str)[:80]}") for m, q, e in cases]


# --- every DSL form -----------------------------------------------------------------------------

SUCCESS = {"job01", "job03", "job07"}

MATCH_CASES = _cases(
    # match all
    ("organization", {}, {"cortex", "demo", "acme"}),
    ("organization", None, {"cortex", "demo", "acme"}),
    ("organization", {"_any": "whatever"}, {"cortex", "demo", "acme"}),
    ("job", {"_and": []}, ALL_JOBS),
    ("job", {"_or": []}, ALL_JOBS),  # an empty bool "should" is match-all in Elasticsearch
    # _field/_value and the {"field": value} shorthand
    ("organization", {"_field": "name", "_value": "demo"}, {"demo"}),
    ("organization", {"_field": "status", "_value": "Active"}, {"cortex", "demo"}),
    ("organization", {"_field": "id", "_value": "acme"}, {"acme"}),
    ("organization", {"_id": "demo"}, {"demo"}),
    ("organization", {"status": "active"}, set()),  # keyword: exact, case-sensitive
    ("organization", {"description": "Default organization"}, {"cortex"}),
    ("organization", {"description": "Default"}, set()),  # text: exact for _field/_value
    ("organization", {"updatedBy": "admin"}, {"acme"}),
    ("user", {"_field": "login", "_value": "bob"}, {"bob"}),
    ("user", {"_field": "_id", "_value": "carol"}, {"carol"}),
    ("user", {"name": "Alice Liddell"}, {"alice"}),
    ("user", {"roles": "read"}, {"alice", "bob", "carol"}),
    ("user", {"_field": "roles", "_value": "superadmin"}, {"admin"}),
    ("user", {"roles": "rea"}, set()),
    ("user", {"hasKey": True}, {"admin", "carol"}),
    ("user", {"hasKey": "false"}, {"alice", "bob"}),
    ("user", {"hasPassword": False}, {"bob", "carol"}),
    ("user", {"createdBy": "alice"}, {"bob"}),
    ("worker", {"_field": "dataTypeList", "_value": "thehive:case"}, {"w-mailer"}),
    ("worker", {"dataTypeList": "thehive:case"}, {"w-mailer"}),
    ("worker", {"_field": "dataTypeList", "_value": "file"}, {"w-file", "w-vt"}),
    ("worker", {"dataTypeList": "thehive"}, set()),
    ("worker", {"_field": "name", "_value": "Abuse_Finder_3_0"}, {"w-abuse"}),
    ("worker", {"analyzerDefinitionId": "File_Info_8_0"}, {"w-file"}),
    ("worker", {"type": "responder"}, {"w-mailer"}),
    ("worker", {"organization": "acme"}, {"w-vt"}),
    ("worker", {"rate": 1000}, {"w-abuse"}),
    ("worker", {"rate": "1000"}, {"w-abuse"}),  # numeric strings are numbers
    ("worker", {"jobCache": 10}, {"w-abuse"}),  # an integer against a float column
    ("worker", {"jobCache": "5.0"}, {"w-vt"}),
    ("worker", {"rateUnit": "Minute"}, {"w-vt"}),
    ("worker", {"version": "8.0"}, {"w-file"}),
    ("worker", {"dockerImage": "cortexneurons/fileinfo:8"}, {"w-file"}),
    ("job", {"workerId": "w-abuse"}, {"job01", "job02", "job05", "job07", "job08"}),
    ("job", {"analyzerId": "w-file"}, {"job03"}),
    ("job", {"analyzerName": "Mailer_1_0"}, {"job04"}),
    ("job", {"workerDefinitionId": "VirusTotal_GetReport_3_1"}, {"job06"}),
    ("job", {"status": "Success"}, SUCCESS),
    ("job", {"type": "responder"}, {"job04"}),
    ("job", {"dataType": "thehive:case"}, {"job04"}),
    ("job", {"data": "8.8.8.8"}, {"job01", "job08"}),
    ("job", {"data": TRICKY_URL}, {"job07"}),
    ("job", {"label": "#12 Phishing campaign"}, {"job04"}),
    ("job", {"message": "Phishing campaign (case #12)"}, {"job04"}),
    ("job", {"message": "Phishing"}, set()),
    ("job", {"cacheTag": "tag-job05"}, {"job05"}),
    ("job", {"tlp": 0}, {"job01"}),
    ("job", {"tlp": "1"}, {"job05", "job07"}),
    ("job", {"tlp": 1.0}, {"job05", "job07"}),
    ("job", {"tlp": True}, {"job05", "job07"}),
    ("job", {"tlp": 1.5}, set()),
    ("job", {"pap": 3}, {"job06"}),
    ("job", {"date": D0 + HOUR}, {"job01"}),
    ("job", {"createdAt": str(D0 + 2 * HOUR)}, {"job02"}),
    ("job", {"createdAt": "20231115T010000+0000"}, {"job01"}),
    ("job", {"createdAt": "20231115T020000+0100"}, {"job01"}),
    ("job", {"startDate": D0 + 2 * HOUR + 100}, {"job02"}),
    ("job", {"attachment.id": SHA256_A}, {"job03"}),
    ("job", {"attachment.name": "evil.exe"}, {"job06"}),
    ("job", {"attachment.contentType": "application/pdf"}, {"job03"}),
    ("job", {"attachment.size": 1024}, {"job03"}),
    ("job", {"attachment.size": "5000000"}, {"job06"}),
    ("job", {"attachment.hashes": MD5_A}, {"job03"}),
    ("job", {"attachment.hashes": SHA1_B}, {"job06"}),
    ("report", {"job": "job03"}, {"rep03"}),
    ("artifact", {"tags": "dns"}, {"art01", "art02"}),
    ("artifact", {"_field": "tags", "_value": "100%_sure"}, {"art04"}),
    ("artifact", {"job": "job01"}, {"art01", "art02"}),
    ("artifact", {"report": "rep07"}, {"art04"}),
    ("artifact", {"attachment.name": "macro.vba"}, {"art03"}),
    ("artifact", {"message": "EICAR test file"}, {"art04"}),
    # _like: case-insensitive substring, wildcards taken literally
    ("job", {"_like": {"_field": "errorMessage", "_value": "REFUSED"}}, {"job02"}),
    ("job", {"_like": {"_field": "dataType", "_value": "ip"}}, {"job01", "job05", "job08"}),
    ("job", {"_like": {"_field": "data", "_value": "example.com"}}, {"job02", "job07"}),
    ("job", {"_like": {"_field": "data", "_value": "a%b_c"}}, {"job07"}),
    ("job", {"_like": {"_field": "data", "_value": "%"}}, {"job07"}),
    ("job", {"_like": {"_field": "data", "_value": "_"}}, {"job04", "job07"}),
    ("job", {"_like": {"_field": "data", "_value": "c\\d"}}, {"job07"}),
    ("job", {"_like": {"_field": "workerName", "_value": "abuse"}}, {"job01", "job02", "job05", "job07", "job08"}),
    ("job", {"_like": {"_field": "attachment.name", "_value": "PDF"}}, {"job03"}),
    ("job", {"_like": {"_field": "tlp", "_value": 3}}, {"job06"}),
    ("worker", {"_like": {"_field": "description", "_value": "virustotal"}}, {"w-vt"}),
    ("worker", {"_like": {"_field": "dataTypeList", "_value": "THEHIVE"}}, {"w-mailer"}),
    ("artifact", {"_like": {"_field": "tags", "_value": "%"}}, {"art04"}),
    # _wildcard: * and ?, anchored on keywords, inside the value on text fields
    ("worker", {"_wildcard": {"_field": "name", "_value": "*_3_?"}}, {"w-abuse", "w-vt"}),
    ("worker", {"_wildcard": {"_field": "name", "_value": "abuse*"}}, {"w-abuse"}),
    ("worker", {"_wildcard": {"_field": "name", "_value": "Abuse"}}, set()),
    ("worker", {"_wildcard": {"_field": "description", "_value": "e?ail"}}, {"w-abuse", "w-mailer"}),
    ("worker", {"_wildcard": {"_field": "dataTypeList", "_value": "thehive:*"}}, {"w-mailer"}),
    ("job", {"_wildcard": {"_field": "data", "_value": "8.8.8.?"}}, {"job01", "job08"}),
    ("job", {"_wildcard": {"_field": "data", "_value": "*a%b_c*"}}, {"job07"}),
    ("job", {"_wildcard": {"_field": "data", "_value": "*a?b?c*"}}, {"job07"}),
    ("job", {"_wildcard": {"_field": "data", "_value": "*\\\\d"}}, {"job07"}),
    ("job", {"_wildcard": {"_field": "data", "_value": "%"}}, set()),
    ("job", {"_wildcard": {"_field": "data", "_value": "_______"}}, set()),
    ("job", {"_wildcard": {"_field": "attachment.contentType", "_value": "application/*"}}, {"job03", "job06"}),
    ("artifact", {"_wildcard": {"_field": "tags", "_value": "goo*"}}, {"art01"}),
    # _in
    ("job", {"_in": {"_field": "status", "_values": ["Success", "Failure"]}}, SUCCESS | {"job02"}),
    ("job", {"_in": {"_field": "tlp", "_values": [0, "3"]}}, {"job01", "job06"}),
    ("job", {"_in": {"_field": "status", "_values": []}}, set()),
    ("job", {"_in": {"_field": "attachment.hashes", "_values": [MD5_A, MD5_B]}}, {"job03", "job06"}),
    ("worker", {"_in": {"_field": "dataTypeList", "_values": ["hash", "mail"]}}, {"w-abuse", "w-vt"}),
    ("worker", {"_in": {"_field": "rate", "_values": [4, 1000]}}, {"w-abuse", "w-vt"}),
    ("organization", {"_in": {"_field": "_id", "_values": ["demo", "nope"]}}, {"demo"}),
    ("user", {"_in": {"_field": "hasKey", "_values": [True]}}, {"admin", "carol"}),
    # _contains: the field exists (a non-empty list for lists, not JSON null for JSON)
    ("job", {"_contains": "attachment"}, {"job03", "job06"}),
    ("job", {"_contains": "attachment.hashes"}, {"job03", "job06"}),
    ("job", {"_contains": "attachment.size"}, {"job03", "job06"}),
    ("job", {"_contains": "errorMessage"}, {"job02"}),
    ("job", {"_contains": "label"}, {"job04"}),
    ("job", {"_contains": "startDate"}, ALL_JOBS - {"job04", "job08"}),
    ("job", {"_contains": "data"}, ALL_JOBS - {"job03", "job06"}),
    ("job", {"_not": {"_contains": "attachment"}}, ALL_JOBS - {"job03", "job06"}),
    ("artifact", {"_contains": "tags"}, {"art01", "art02", "art04"}),
    ("artifact", {"_contains": "message"}, {"art01", "art04"}),
    ("worker", {"_contains": "dockerImage"}, {"w-file", "w-vt"}),
    ("worker", {"_contains": "rate"}, {"w-abuse", "w-vt"}),
    ("user", {"_contains": "hasKey"}, {"admin", "alice", "bob", "carol"}),
    ("organization", {"_contains": "updatedAt"}, {"acme"}),
    # ranges
    ("job", {"_gt": {"tlp": 1}}, {"job02", "job03", "job04", "job06", "job08"}),
    ("job", {"_gte": {"tlp": 1}}, ALL_JOBS - {"job01"}),
    ("job", {"_lt": {"tlp": 1}}, {"job01"}),
    ("job", {"_lte": {"tlp": "1"}}, {"job01", "job05", "job07"}),
    ("job", {"_lt": {"tlp": 0.5}}, {"job01"}),
    ("job", {"_gt": {"tlp": 2.5}}, {"job06"}),
    ("job", {"_between": {"_field": "tlp", "_from": 0, "_to": 2}}, {"job05", "job07"}),
    ("job", {"_between": {"_field": "tlp", "_from": 1, "_to": 1}}, set()),
    ("job", {"_gte": {"createdAt": D0 + 2 * DAY}}, {"job05", "job06", "job07", "job08"}),
    ("job", {"_gte": {"date": "20231117T000000+0000"}}, {"job05", "job06", "job07", "job08"}),
    ("job", {"_lt": {"endDate": D0 + DAY}}, {"job01", "job02"}),
    ("job", {"_lt": {"attachment.size": 2000}}, {"job03"}),
    ("job", {"_gt": {"attachment.size": 2000}}, {"job06"}),
    ("job", {"_not": {"_gt": {"attachment.size": 2000}}}, ALL_JOBS - {"job06"}),
    ("worker", {"_gt": {"jobTimeout": 29.5}}, {"w-abuse", "w-file"}),
    ("worker", {"_lt": {"name": "B"}}, {"w-abuse"}),  # strings compare too
    ("organization", {"_between": {"_field": "createdAt", "_from": T0, "_to": T0 + 2}}, {"demo"}),
    # _id and _type
    ("job", {"_id": "job03"}, {"job03"}),
    ("job", {"_id": "nope"}, set()),
    ("job", {"_type": "job"}, ALL_JOBS),
    ("job", {"_type": "report"}, set()),
    ("artifact", {"_type": "artifact"}, {"art01", "art02", "art03", "art04"}),
    # _and, _or, _not, and missing fields under _not
    ("job", {"_not": {"status": "Success"}}, ALL_JOBS - SUCCESS),
    ("job", {"_not": {"label": "#12 Phishing campaign"}}, ALL_JOBS - {"job04"}),
    ("job", {"_not": {"_not": {"label": "#12 Phishing campaign"}}}, {"job04"}),
    ("job", {"_not": {"attachment.name": "invoice.pdf"}}, ALL_JOBS - {"job03"}),
    ("job", {"_not": {"attachment.hashes": MD5_A}}, ALL_JOBS - {"job03"}),
    ("job", {"_not": {"_like": {"_field": "errorMessage", "_value": "refused"}}}, ALL_JOBS - {"job02"}),
    ("job", {"_not": {"_or": [{"data": "8.8.8.8"}, {"label": "x"}]}}, ALL_JOBS - {"job01", "job08"}),
    ("artifact", {"_not": {"tags": "dns"}}, {"art03", "art04"}),
    ("job", {"_and": [{"status": "Success"}, {"dataType": "ip"}]}, {"job01"}),
    ("job", {"_or": [{"status": "Waiting"}, {"_and": [{"status": "Success"}, {"tlp": 1}]}]},
     {"job04", "job07", "job08"}),
    ("job", {"_and": [{"_or": [{"dataType": "ip"}, {"dataType": "domain"}]}, {"_not": {"status": "Deleted"}}]},
     {"job01", "job02", "job08"}),
    # parents and children
    ("worker", {"_parent": {"_type": "organization", "_id": "acme"}}, {"w-vt"}),
    ("worker", {"_parent": {"_type": "organization", "_query": {"status": "Active"}}},
     {"w-abuse", "w-file", "w-mailer"}),
    ("report", {"_parent": {"_type": "job", "_id": "job07"}}, {"rep07"}),
    ("report", {"_parent": {"_type": "job", "_query": {"status": "Success"}}}, {"rep01", "rep03", "rep07"}),
    ("artifact", {"_parent": {"_type": "report", "_id": "rep01"}}, {"art01", "art02"}),
    ("artifact",
     {"_parent": {"_type": "report", "_query": {"_parent": {"_type": "job", "_query": {"dataType": "file"}}}}},
     {"art03"}),
    ("job", {"_child": {"_type": "report", "_query": {}}}, {"job01", "job02", "job03", "job07"}),
    ("job", {"_not": {"_child": {"_type": "report", "_query": {}}}}, {"job04", "job05", "job06", "job08"}),
    ("job", {"_child": {"_type": "report", "_query": {"_child": {"_type": "artifact", "_query": {"tags": "dns"}}}}},
     {"job01"}),
    ("report", {"_child": {"_type": "artifact", "_query": {"dataType": "hash"}}}, {"rep07"}),
    ("organization", {"_child": {"_type": "worker", "_query": {"type": "responder"}}}, {"demo"}),
    ("organization", {"_child": {"_type": "worker", "_query": {"dataTypeList": "hash"}}}, {"acme"}),
    ("job",
     {"_child": {"_type": "report", "_query": {"_parent": {"_type": "job", "_query": {"dataType": "url"}}}}},
     {"job07"}),
)  # fmt: skip


@on_db
@pytest.mark.parametrize(("model", "query", "expected"), MATCH_CASES)
async def test_dsl(db: AsyncEngine, model: str, query: Any, expected: set[str]) -> None:
    assert await found(db, model, query) == expected


# --- _string (Lucene query strings) -------------------------------------------------------------

STRING_CASES = _cases(
    ("job", "status:Success", SUCCESS),
    ("job", "status:Success AND tlp:1", {"job07"}),
    ("job", "status:Success && -tlp:1", {"job01", "job03"}),
    ("job", "status:Success AND NOT tlp:1", {"job01", "job03"}),
    ("job", "status:(Waiting OR InProgress)", {"job04", "job06", "job08"}),
    ("job", "status:(Waiting InProgress)", {"job04", "job06", "job08"}),
    ("job", "status:Waiting status:InProgress", {"job04", "job06", "job08"}),
    ("job", "status:Waiting || status:InProgress", {"job04", "job06", "job08"}),
    ("job", "+dataType:ip -status:Deleted", {"job01", "job08"}),
    ("job", "+dataType:ip status:Deleted", {"job01", "job05", "job08"}),  # optional beside required
    ("job", "dataType:ip -status:Deleted", {"job01", "job08"}),
    ("job", "-status:Deleted", ALL_JOBS - {"job05"}),
    ("job", "!status:Success", ALL_JOBS - SUCCESS),
    ("job", "NOT status:Deleted AND dataType:ip", {"job01", "job08"}),
    ("job", "(status:Success OR status:Failure) AND dataType:domain", {"job02"}),
    ("job", "tlp:[1 TO 2]", {"job02", "job03", "job04", "job05", "job07", "job08"}),
    ("job", "tlp:{1 TO 3}", {"job02", "job03", "job04", "job08"}),
    ("job", "tlp:[1 TO 3}", ALL_JOBS - {"job01", "job06"}),
    ("job", "tlp:[2 TO *]", {"job02", "job03", "job04", "job06", "job08"}),
    ("job", "tlp:>=2", {"job02", "job03", "job04", "job06", "job08"}),
    ("job", "tlp:>2", {"job06"}),
    ("job", "tlp:<1", {"job01"}),
    ("job", "tlp:<= 1", {"job01", "job05", "job07"}),
    ("job", "createdAt:[20231117T000000+0000 TO *]", {"job05", "job06", "job07", "job08"}),
    ("job", f"createdAt:[{D0} TO {D0 + DAY}]", {"job01", "job02"}),
    ("job", 'data:"8.8.8.8"', {"job01", "job08"}),
    ("job", "data:8.8.8.8", {"job01", "job08"}),
    ("job", "data:8.8.8.*", {"job01", "job08"}),
    ("job", "data:*example*", {"job02", "job07"}),
    ("job", "errorMessage:refused", {"job02"}),  # text: a word inside the value
    ("job", 'message:"DROP TABLE"', {"job07"}),
    ("job", "message:phish*", {"job04"}),
    ("job", "8.8.8.8", {"job01", "job08"}),  # bare terms search every string field
    ("job", "refused", {"job02"}),
    ("job", "Phishing", {"job04"}),
    ("job", '"whois.example.net"', {"job02"}),
    ("job", "job0?", ALL_JOBS),
    ("job", "evil.exe", {"job06"}),
    ("job", MD5_B, {"job06"}),
    ("job", "_exists_:errorMessage", {"job02"}),
    ("job", "attachment.name:*.pdf", {"job03"}),
    ("job", "attachment.name:*", {"job03", "job06"}),
    ("job", "attachment.size:[1000 TO 2000]", {"job03"}),
    ("job", f"attachment.hashes:{SHA256_A}", {"job03"}),
    ("job", "analyzerName:Abuse_Finder_3_0 AND date:<" + str(D0 + DAY), {"job01", "job02"}),
    ("job", "*", ALL_JOBS),
    ("job", "*:*", ALL_JOBS),
    ("job", "", ALL_JOBS),
    ("job", "   ", ALL_JOBS),
    ("worker", "dataTypeList:thehive\\:case", {"w-mailer"}),
    ("worker", 'dataTypeList:"thehive:case"', {"w-mailer"}),
    ("worker", "dataTypeList:thehive:case", {"w-mailer"}),  # lenient about the unescaped colon
    ("worker", "dataTypeList:thehive*", {"w-mailer"}),
    ("worker", "name:Abuse_Finder_3_0^2", {"w-abuse"}),  # boost ignored
    ("worker", "description:macros~1", {"w-file"}),  # fuzziness ignored
    ("worker", "rate:[* TO 10]", {"w-vt"}),
    ("worker", "type:analyzer AND -organization:acme", {"w-abuse", "w-file"}),
    ("worker", "hash", {"w-vt"}),
    ("user", "roles:orgadmin", {"alice"}),
    ("user", "hasKey:true AND organization:acme", {"carol"}),
    ("user", "name:Alice\\ Liddell", {"alice"}),
    ("organization", "status:Locked OR name:cortex", {"acme", "cortex"}),
    ("organization", "description:corporation", {"acme"}),
    ("artifact", "tags:malware OR tags:google", {"art01", "art04"}),
    ("artifact", "tags:100%_sure", {"art04"}),
    ("artifact", "tags:100\\%\\_sure", {"art04"}),
    ("job", 'message:"Robert\'); DROP TABLE job;--"', {"job07"}),
)


@on_db
@pytest.mark.parametrize(("model", "query_string", "expected"), STRING_CASES)
async def test_query_string(db: AsyncEngine, model: str, query_string: str, expected: set[str]) -> None:
    assert await found(db, model, {"_string": query_string}) == expected


def test_query_string_syntax_tree() -> None:
    T = lucene.Term
    assert lucene.parse("a b") == lucene.Or((T(None, "a", "term"), T(None, "b", "term")))
    assert lucene.parse("a AND b OR c") == lucene.Or(
        (lucene.And((T(None, "a", "term"), T(None, "b", "term"))), T(None, "c", "term"))
    )
    assert lucene.parse("+a -b c") == lucene.And((T(None, "a", "term"), lucene.Not(T(None, "b", "term"))))
    assert lucene.parse("f:(x y*)") == lucene.Or((T("f", "x", "term"), T("f", "y*", "wildcard")))
    assert lucene.parse("f:[1 TO *}") == lucene.Range("f", "1", None, True, False)
    assert lucene.parse("f:>=-5") == lucene.Range("f", "-5", None, True, False)
    assert lucene.parse('f:"a \\"b\\""') == T("f", 'a "b"', "phrase")
    assert lucene.parse("a-b") == T(None, "a-b", "term")
    assert lucene.parse("f:a\\*b") == T("f", "a*b", "term")
    assert lucene.parse("f:a\\*b*") == T("f", "a\\*b*", "wildcard")
    assert lucene.parse("_exists_:f") == lucene.Exists("f")
    assert lucene.parse("f:*") == lucene.Exists("f")
    assert lucene.parse("NOT NOT a") == lucene.Not(lucene.Not(T(None, "a", "term")))


def test_wildcard_to_like() -> None:
    assert wildcard_to_like("a*b?c") == "a%b_c"
    assert wildcard_to_like("100%_x") == "100\\%\\_x"
    assert wildcard_to_like("a\\*b\\?") == "a*b?"
    assert wildcard_to_like("back\\\\slash") == "back\\\\slash"
    assert wildcard_to_like("trailing\\") == "trailing\\\\"


# --- real clients -------------------------------------------------------------------------------

CORTEX4PY_CASES = _cases(
    ("job", Eq("status", "Success"), SUCCESS),
    ("job", Gt("tlp", 2), {"job06"}),
    ("job", Gte("tlp", 2), {"job02", "job03", "job04", "job06", "job08"}),
    ("job", Lt("tlp", 1), {"job01"}),
    ("job", Lte("createdAt", D0 + 2 * HOUR), {"job01", "job02"}),
    ("job", And(Eq("workerId", "w-abuse"), Eq("status", "Success")), {"job01", "job07"}),
    ("job", Or(Eq("status", "Failure"), Eq("dataType", "file")), {"job02", "job03", "job06"}),
    ("job", Not(Eq("workerId", "w-abuse")), {"job03", "job04", "job06"}),
    ("job", In("dataType", ["url", "domain"]), {"job02", "job07"}),
    ("job", Contains("attachment"), {"job03", "job06"}),
    ("job", Id("job04"), {"job04"}),
    ("job", Between("createdAt", D0, D0 + DAY + HOUR), {"job01", "job02"}),
    ("report", ParentId("job", "job02"), {"rep02"}),
    ("artifact", Parent("report", Eq("job", "job01")), {"art01", "art02"}),
    ("job", Child("report", Child("artifact", Eq("tags", "malware"))), {"job07"}),
    ("job", Type("job"), ALL_JOBS),
    ("job", String("status:Failure OR status:InProgress"), {"job02", "job06"}),
    ("job", And(Gt("createdAt", D0 + DAY), Not(Eq("status", "Deleted")), Lte("tlp", 2)),
     {"job03", "job04", "job07", "job08"}),
    # the wire capture in spec/clients.md §1.6
    ("organization", Eq("name", "demo"), {"demo"}),
    ("organization", Eq("status", "Active"), {"cortex", "demo"}),
    ("user", Eq("organization", "demo"), {"alice", "bob"}),
    ("user", And(Eq("organization", "demo"), Eq("status", "Ok")), {"alice"}),
    ("worker", Eq("name", "Abuse_Finder_3_0"), {"w-abuse"}),
    ("job", Gt("createdAt", D0 + 3 * DAY), {"job07", "job08"}),
    ("job", Eq("workerId", "w-file"), {"job03"}),
)  # fmt: skip


@on_db
@pytest.mark.parametrize("over_the_wire", [False, True], ids=["python", "json"])
@pytest.mark.parametrize(("model", "query", "expected"), CORTEX4PY_CASES)
async def test_cortex4py_helpers(
    db: AsyncEngine, model: str, query: Any, expected: set[str], over_the_wire: bool
) -> None:
    # The helpers build tuples for And/Or; on the wire they are JSON arrays.
    if over_the_wire:
        query = json.loads(json.dumps(query))
    assert await found(db, model, query) == expected


THEHIVE_CASES = _cases(
    # TheHive 4: responders for an entity type, by name (range in the body), analyzers by name
    ("worker", {"_field": "dataTypeList", "_value": "thehive:case"}, {"w-mailer"}),
    ("worker", {"_field": "dataTypeList", "_value": "thehive:alert"}, {"w-mailer"}),
    ("worker", {"_field": "dataTypeList", "_value": "thehive:case_task"}, set()),
    ("worker", {"_field": "name", "_value": "Mailer_1_0"}, {"w-mailer"}),
    # TheHive 3: the shorthand
    ("worker", {"dataTypeList": "thehive:case"}, {"w-mailer"}),
    # the Cortex UI's job list filters
    ("job", {"_and": [{"_in": {"_field": "status", "_values": ["Success", "Failure"]}},
                      {"_like": {"_field": "data", "_value": "8.8"}}]}, {"job01"}),
    ("job", {"_and": [{"_field": "dataType", "_value": "ip"}, {"_field": "analyzerId", "_value": "w-abuse"}]},
     {"job01", "job05", "job08"}),
    # what the API adds to every job _search, around the client's query
    ("job", {"_and": [{"organization": "demo"}, {"_not": {"status": "Deleted"}}, {"dataType": "ip"}]},
     {"job01", "job08"}),
    # GET /api/analyzer/type/:dataType in the caller's organization
    ("worker", {"_and": [{"organization": "demo"}, {"type": "analyzer"}, {"dataTypeList": "ip"}]}, {"w-abuse"}),
)  # fmt: skip


@on_db
@pytest.mark.parametrize(("model", "query", "expected"), THEHIVE_CASES)
async def test_thehive_queries(db: AsyncEngine, model: str, query: Any, expected: set[str]) -> None:
    assert await found(db, model, query) == expected


# --- injection ----------------------------------------------------------------------------------

HOSTILE_VALUES = [
    INJECTION,
    "x' OR '1'='1",
    "'; DROP TABLE job; --",
    "\"]') OR 1=1 --",
    "$1",
    "?",
    ":name",
    "%(x)s",
    "\\",
    "{hashes}",
    "$.id",
]


@on_db
@pytest.mark.parametrize("value", HOSTILE_VALUES)
async def test_hostile_values_are_just_values(db: AsyncEngine, value: str) -> None:
    expect_job07 = {"job07"} if value == INJECTION else set()
    assert await found(db, "job", {"message": value}) == expect_job07
    assert await found(db, "job", {"_like": {"_field": "message", "_value": value}}) == expect_job07
    assert await found(db, "job", {"_wildcard": {"_field": "data", "_value": value}}) == set()
    assert await found(db, "job", {"_in": {"_field": "data", "_values": [value, value]}}) == set()
    assert await found(db, "job", {"attachment.hashes": value}) == set()
    assert await found(db, "job", {"attachment.name": value}) == set()
    assert await found(db, "worker", {"dataTypeList": value}) == set()
    assert await found(db, "artifact", {"_like": {"_field": "tags", "_value": value}}) == set()
    assert await found(db, "organization", {"_id": value}) == set()
    assert await found(db, "report", {"_parent": {"_type": "job", "_id": value}}) == set()
    # a value that is no valid query string is a SearchError, never a database error
    try:
        result = await found(db, "job", {"_string": f'message:"{value}"'})
    except SearchError:
        pass
    else:
        assert result <= {"job07"}


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_values_are_bound_parameters(dialect: Any) -> None:
    queries = [
        {"message": INJECTION},
        {"_like": {"_field": "message", "_value": INJECTION}},
        {"_wildcard": {"_field": "data", "_value": INJECTION}},
        {"_in": {"_field": "data", "_values": [INJECTION]}},
        {"attachment.hashes": INJECTION},
        {"attachment.name": INJECTION},
        {"_string": f'message:"{INJECTION}"'},
        {"_string": "DROP*"},
        {"_id": INJECTION},
    ]
    for query in queries:
        sql = str(sa.select(JOB.table.c.id).where(compile_query(JOB, query)).compile(dialect=dialect))
        assert "DROP" not in sql, sql


@on_db
async def test_tables_survive(db: AsyncEngine) -> None:
    for table, rows in ROWS:
        async with db.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(table)) == len(rows)


@on_db
async def test_statement_cache_keeps_values_and_paths_apart(db: AsyncEngine) -> None:
    # The JSON constructs take part in SQLAlchemy's compiled-statement cache: the same shape with
    # another value or another path must not reuse the previous one's parameters or SQL.
    for _ in range(2):
        assert await found(db, "artifact", {"tags": "dns"}) == {"art01", "art02"}
        assert await found(db, "artifact", {"tags": "malware"}) == {"art04"}
        assert await found(db, "job", {"attachment.name": "evil.exe"}) == {"job06"}
        assert await found(db, "job", {"attachment.id": SHA256_A}) == {"job03"}
        assert await found(db, "job", {"_contains": "attachment.hashes"}) == {"job03", "job06"}
        assert await found(db, "job", {"_contains": "attachment"}) == {"job03", "job06"}
        assert await found(db, "job", {"_gt": {"attachment.size": 1}}) == {"job03", "job06"}
        assert await found(db, "job", {"_gt": {"attachment.size": 2000}}) == {"job06"}


# --- invalid queries ----------------------------------------------------------------------------

INVALID = [
    (JOB, {"_field": "nope", "_value": 1}, "nope"),
    (JOB, {"nope": 1}, "nope"),
    (JOB, {"_field": "status; DROP TABLE job", "_value": 1}, "status; DROP TABLE job"),
    (JOB, {"_foo": 1}, "_foo"),
    (JOB, {"_field": "status"}, "_value"),
    (JOB, {"_field": "status", "_value": "Success", "extra": 1}, "_field"),
    (JOB, {"status": "Success", "tlp": 1}, "one operator"),
    (JOB, {"_field": 5, "_value": "x"}, "Unknown field"),
    (JOB, {"status": None}, "status"),
    (JOB, {"status": ["Success"]}, "status"),
    (JOB, {"status": {"a": 1}}, "status"),
    (JOB, {"tlp": "high"}, "tlp"),
    (JOB, {"tlp": float("nan")}, "tlp"),
    (JOB, {"tlp": "inf"}, "tlp"),
    (JOB, {"createdAt": "2023-11-15"}, "createdAt"),
    (JOB, {"createdAt": "20231115T250000+0000"}, "createdAt"),
    (JOB, {"attachment": "x"}, "attachment"),
    (JOB, {"_and": {"status": "Success"}}, "_and"),
    (JOB, {"_or": "x"}, "_or"),
    (JOB, {"_not": "x"}, "JSON object"),
    (JOB, {"_not": [{"status": "Success"}]}, "JSON object"),
    (JOB, {"_and": [1]}, "JSON object"),
    (JOB, {"_like": {"_field": "status"}}, "_value"),
    (JOB, {"_like": "status"}, "_like"),
    (JOB, {"_like": {"_field": "attachment", "_value": "x"}}, "attachment"),
    (JOB, {"_wildcard": {"_field": "tlp", "_value": "1*"}}, "tlp"),
    (JOB, {"_wildcard": {"_field": "data", "_value": 5}}, "string"),
    (JOB, {"_in": {"_field": "status", "_values": "Success"}}, "_values"),
    (JOB, {"_in": {"_field": "status"}}, "_values"),
    (JOB, {"_in": {"_field": "status", "_values": [["x"]]}}, "status"),
    (JOB, {"_in": {"_field": "status", "_values": ["x"] * (MAX_TERMS + 1)}}, "too large"),
    (JOB, {"_contains": 5}, "_contains"),
    (JOB, {"_contains": "nope"}, "nope"),
    (JOB, {"_gt": {"tlp": 1, "pap": 1}}, "_gt"),
    (JOB, {"_gt": {}}, "_gt"),
    (JOB, {"_gt": 5}, "_gt"),
    (JOB, {"_lte": {"attachment": 1}}, "attachment"),
    (USER, {"_gt": {"roles": "a"}}, "roles"),
    (USER, {"_lt": {"hasKey": True}}, "hasKey"),
    (USER, {"hasKey": "maybe"}, "hasKey"),
    (JOB, {"_between": {"_field": "tlp", "_from": 0}}, "_to"),
    (JOB, {"_between": {"_field": "tlp", "_from": "a", "_to": 2}}, "tlp"),
    (JOB, {"_id": ["a"]}, "_id"),
    (JOB, {"_type": 5}, "_type"),
    (JOB, {"_parent": {"_type": "organization", "_id": "demo"}}, "parent"),
    (JOB, {"_parent": {"_id": "x"}}, "_type"),
    (REPORT, {"_parent": {"_type": "job"}}, "_query"),
    (REPORT, {"_parent": {"_type": "job", "_query": {"nope": 1}}}, "nope"),
    (JOB, {"_child": {"_type": "artifact", "_query": {}}}, "child"),
    (JOB, {"_child": {"_type": "report"}}, "_query"),
    (ORGANIZATION, {"_child": {"_type": "user", "_query": {}}}, "child"),
    (USER, {"key_hash": "kh-admin"}, "key_hash"),
    (USER, {"key": "x"}, "key"),
    (USER, {"password": "x"}, "password"),
    (USER, {"preferences": "{}"}, "preferences"),
    (WORKER, {"configuration": "x"}, "configuration"),
    (JOB, {"input": "x"}, "input"),
    (JOB, {"parameters": "{}"}, "parameters"),
    (JOB, {"lease_owner": "x"}, "lease_owner"),
    (REPORT, {"full": "x"}, "full"),
    (REPORT, {"_like": {"_field": "summary", "_value": "x"}}, "summary"),
    (JOB, {"_string": "input:x"}, "input"),
    (JOB, {"_string": "status:"}, "end of query"),
    (JOB, {"_string": "(status:Success"}, "')'"),
    (JOB, {"_string": "status:Success)"}, "')'"),
    (JOB, {"_string": 'data:"unterminated'}, "unterminated"),
    (JOB, {"_string": "tlp:[1 TO"}, "range bound"),
    (JOB, {"_string": "tlp:[1 2]"}, "TO"),
    (JOB, {"_string": "[1 TO 2]"}, "needs a field"),
    (JOB, {"_string": "nope:1"}, "nope"),
    (JOB, {"_string": "tlp:abc"}, "tlp"),
    (JOB, {"_string": "tlp:a*"}, "tlp"),
    (JOB, {"_string": "AND"}, "AND"),
    (JOB, {"_string": "status:Success AND"}, "end of query"),
    (JOB, {"_string": "()"}, "empty group"),
    (JOB, {"_string": "^2"}, "'^'"),
    (JOB, {"_string": "(" * 40 + "a" + ")" * 40}, "nested"),
    (JOB, {"_string": 5}, "_string"),
    (JOB, [], "JSON object"),
    (JOB, "status:Success", "JSON object"),
    (JOB, 5, "JSON object"),
]


def _nested(depth: int) -> dict[str, Any]:
    query: dict[str, Any] = {"status": "Success"}
    for _ in range(depth):
        query = {"_not": query}
    return query


INVALID.append((JOB, _nested(100), "nested"))


@pytest.mark.parametrize(
    ("model", "query", "mentions"),
    [pytest.param(m, q, w, id=f"{m.name}:{json.dumps(q, default=str)[:60]}") for m, q, w in INVALID],
)
def test_invalid_queries(model: Any, query: Any, mentions: str) -> None:
    with pytest.raises(SearchError) as caught:
        compile_query(model, query)
    assert mentions in caught.value.message
    assert caught.value.status == 400


def test_deep_but_allowed_nesting_compiles() -> None:
    compile_query(JOB, _nested(30))


# --- paging -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (0, DEFAULT_LIMIT)),
        ("all", (0, None)),
        ("0-10", (0, 10)),
        ("0-1", (0, 1)),
        ("10-25", (10, 15)),
        ("0-50", (0, 50)),
        ("5", (5, 10)),
        ("5-5", (5, 10)),
        ("10-3", (10, 10)),
        ("7-", (7, 10)),  # an empty end is invalid: limit 10
        ("3-abc", (3, 10)),
        ("abc", (0, 10)),
        ("x-7", (0, 7)),
        ("-5", (0, 5)),
        ("", (0, 10)),
        ("ALL", (0, 10)),
        ("1-2-3", (1, 1)),
        (" 1-3", (0, 3)),
        ("+2-4", (2, 2)),
        ("0-99999999999", (0, 99999999999)),
        ("99999999999999999999999-1", (2**62, 10)),
    ],
)
def test_parse_range(value: str | None, expected: tuple[int, int | None]) -> None:
    assert parse_range(value) == expected


@on_db
async def test_default_range_is_ten(db: AsyncEngine) -> None:
    async with db.connect() as conn:
        await conn.execute(
            tables.organization.insert(),
            [
                {"id": f"bulk{n:02}", "description": "", "status": "Active", **_system(T0 + 100 + n)}
                for n in range(12)
            ],
        )
        statement = sa.select(ORGANIZATION.table.c.id).order_by(*order_by(ORGANIZATION, None))
        offset, limit = parse_range(None)
        page = (await conn.scalars(statement.offset(offset).limit(limit))).all()
        await conn.rollback()
    assert page == [f"bulk{n:02}" for n in range(11, 1, -1)]


NEWEST_FIRST = ["job08", "job07", "job06", "job05", "job04", "job03", "job02", "job01"]


@on_db
async def test_ranges_page_through_the_default_order(db: AsyncEngine) -> None:
    assert await search(db, "job", {}, range_="all") == NEWEST_FIRST
    assert await search(db, "job", {}, range_="0-3") == NEWEST_FIRST[:3]
    assert await search(db, "job", {}, range_="3-6") == NEWEST_FIRST[3:6]
    assert await search(db, "job", {}, range_="6-100") == NEWEST_FIRST[6:]
    assert await search(db, "job", {}, range_="7-2") == NEWEST_FIRST[7:]
    assert await search(db, "job", {}, range_="50-60") == []


# --- sorting ------------------------------------------------------------------------------------

SORT_CASES = [
    ("job", None, NEWEST_FIRST),
    ("job", [], NEWEST_FIRST),
    ("job", [""], NEWEST_FIRST),
    ("job", ["-createdAt"], NEWEST_FIRST),
    ("job", "-createdAt", NEWEST_FIRST),
    ("job", ["createdAt"], ["job01", "job02", "job03", "job04", "job05", "job06", "job08", "job07"]),
    ("job", ["+date"], ["job01", "job02", "job03", "job04", "job05", "job06", "job08", "job07"]),
    ("job", ["+tlp"], ["job01", "job07", "job05", "job08", "job04", "job03", "job02", "job06"]),
    ("job", ["-tlp", "+tlp"], ["job06", "job08", "job04", "job03", "job02", "job07", "job05", "job01"]),
    ("job", ["-tlp", "+createdAt"], ["job06", "job02", "job03", "job04", "job08", "job05", "job07", "job01"]),
    ("job", ["date", "-createdAt"], ["job01", "job02", "job03", "job04", "job05", "job06", "job08", "job07"]),
    ("job", ["+id"], ["job01", "job02", "job03", "job04", "job05", "job06", "job07", "job08"]),
    # missing values last, both ways
    ("job", ["startDate"], ["job01", "job02", "job03", "job05", "job06", "job07", "job08", "job04"]),
    ("job", ["-startDate"], ["job07", "job06", "job05", "job03", "job02", "job01", "job08", "job04"]),
    ("job", ["-attachment.size"], ["job06", "job03", "job08", "job07", "job05", "job04", "job02", "job01"]),
    ("job", ["attachment.name"], ["job06", "job03", "job08", "job07", "job05", "job04", "job02", "job01"]),
    ("job", ["status", "-data"],
     ["job05", "job02", "job06", "job07", "job01", "job03", "job04", "job08"]),
    ("worker", ["name"], ["w-abuse", "w-file", "w-mailer", "w-vt"]),
    ("worker", ["-jobTimeout"], ["w-file", "w-abuse", "w-vt", "w-mailer"]),
    ("user", ["-hasKey", "login"], ["admin", "carol", "alice", "bob"]),
    ("organization", ["name"], ["acme", "cortex", "demo"]),
    ("organization", None, ["acme", "demo", "cortex"]),
]  # fmt: skip


@on_db
@pytest.mark.parametrize(("model", "sort", "expected"), SORT_CASES)
async def test_sort(db: AsyncEngine, model: str, sort: Any, expected: list[str]) -> None:
    assert await search(db, model, {}, sort=sort) == expected


@pytest.mark.parametrize(
    ("model", "sort", "mentions"),
    [
        (JOB, ["nope"], "nope"),
        (JOB, ["+"], "''"),
        (JOB, ["-parameters"], "parameters"),
        (JOB, ["attachment"], "attachment"),
        (JOB, ["attachment.hashes"], "attachment.hashes"),
        (USER, ["roles"], "roles"),
        (USER, ["-key_hash"], "key_hash"),
        (WORKER, ["configuration"], "configuration"),
        (JOB, [5], "5"),
        (JOB, {"createdAt": 1}, "sort"),
    ],
)
def test_invalid_sort(model: Any, sort: Any, mentions: str) -> None:
    with pytest.raises(SearchError) as caught:
        order_by(model, sort)
    assert mentions in caught.value.message


def test_sort_always_ends_with_id_descending() -> None:
    for model in MODELS.values():
        for sort in (None, ["createdAt"], ["-createdAt", "+createdAt"]):
            assert str(order_by(model, sort)[-1]).endswith(".id DESC")
    # a client's own id order stays, and is not contradicted
    assert [str(c) for c in order_by(JOB, ["+id", "createdAt"])] == ["job.id ASC", 'job."createdAt" ASC']
    assert len(order_by(JOB, ["createdAt", "date", "-createdAt"])) == 2


# --- aggregations -------------------------------------------------------------------------------


async def stats(db: AsyncEngine, model: Any, query: Any, aggregations: Any, **kw: Any) -> dict[str, Any]:
    async with db.connect() as conn:
        return await run_stats(conn, model, query, aggregations, **kw)


@on_db
async def test_stats_count_as_cortex4py_sends_it(db: AsyncEngine) -> None:
    assert await stats(db, ORGANIZATION, {"_field": "status", "_value": "Active"}, [{"_agg": "count"}]) == {
        "count": 2
    }
    assert await stats(db, ORGANIZATION, {}, [{"_agg": "count"}]) == {"count": 3}
    assert await stats(db, ORGANIZATION, {"name": "nope"}, [{"_agg": "count"}]) == {"count": 0}


@on_db
async def test_stats_merge_named_counts(db: AsyncEngine) -> None:
    result = await stats(
        db,
        ORGANIZATION,
        {},
        [
            {"_agg": "count"},
            {"_agg": "count", "_name": "locked", "_query": {"status": "Locked"}},
            {
                "_agg": "count",
                "_name": "withWorkers",
                "_query": {"_child": {"_type": "worker", "_query": {}}},
            },
        ],
    )
    assert result == {"count": 3, "locked": 1, "withWorkers": 2}


@on_db
async def test_stats_metrics(db: AsyncEngine) -> None:
    result = await stats(
        db,
        JOB,
        {},
        [
            {"_agg": "avg", "_field": "tlp"},
            {"_agg": "min", "_field": "tlp"},
            {"_agg": "max", "_field": "tlp"},
            {"_agg": "sum", "_field": "tlp"},
            {"_agg": "max", "_field": "createdAt", "_name": "latest"},
            {"_agg": "sum", "_field": "attachment.size"},
            {"_agg": "avg", "_field": "pap", "_query": {"status": "Success"}},
        ],
    )
    assert result == {
        "avg_tlp": 13 / 8,
        "min_tlp": 0.0,
        "max_tlp": 3.0,
        "sum_tlp": 13.0,
        "latest": float(D0 + 3 * DAY + HOUR),
        "sum_attachment.size": 5_001_024.0,
        "avg_pap": 5 / 3,
    }
    empty = await stats(
        db, JOB, {"status": "nope"}, [{"_agg": "sum", "_field": "tlp"}, {"_agg": "avg", "_field": "tlp"}]
    )
    assert empty == {"sum_tlp": 0.0, "avg_tlp": None}


@on_db
async def test_stats_top(db: AsyncEngine) -> None:
    result = await stats(
        db, JOB, {"workerId": "w-abuse"}, [{"_agg": "top", "_size": 2, "_order": ["-tlp", "id"]}]
    )
    assert [row["id"] for row in result["top"]] == ["job02", "job08"]
    assert result["top"][0]["status"] == "Failure"
    result = await stats(db, JOB, {}, [{"_agg": "top", "_name": "newest"}])
    assert [row["id"] for row in result["newest"]] == NEWEST_FIRST


@on_db
async def test_stats_field(db: AsyncEngine) -> None:
    by_status = {"_agg": "field", "_field": "status", "_select": [{"_agg": "count"}]}
    assert await stats(db, JOB, {}, [by_status]) == {
        "Success": {"count": 3},
        "Waiting": {"count": 2},
        "Deleted": {"count": 1},
        "Failure": {"count": 1},
        "InProgress": {"count": 1},
    }
    assert list(await stats(db, JOB, {}, [by_status | {"_size": 2}])) == ["Success", "Waiting"]
    assert list(await stats(db, JOB, {}, [by_status | {"_order": ["_key"]}])) == [
        "Deleted",
        "Failure",
        "InProgress",
        "Success",
        "Waiting",
    ]
    assert list(await stats(db, JOB, {}, [by_status | {"_order": ["-_key"], "_size": 1}])) == ["Waiting"]
    by_tlp = {"_agg": "field", "_field": "tlp", "_order": ["+_key"], "_select": [{"_agg": "count"}]}
    assert await stats(db, JOB, {"organization": "demo"}, [by_tlp]) == {
        "0": {"count": 1},
        "1": {"count": 2},
        "2": {"count": 4},
    }
    nested = {
        "_agg": "field",
        "_field": "workerName",
        "_select": [
            {"_agg": "count"},
            {"_agg": "field", "_field": "dataType", "_order": ["_key"], "_select": [{"_agg": "count"}]},
        ],
    }
    assert await stats(db, JOB, {"_not": {"status": "Deleted"}}, [nested]) == {
        "Abuse_Finder_3_0": {"count": 4, "domain": {"count": 1}, "ip": {"count": 2}, "url": {"count": 1}},
        "File_Info_8_0": {"count": 1, "file": {"count": 1}},
        "Mailer_1_0": {"count": 1, "thehive:case": {"count": 1}},
        "VirusTotal_GetReport_3_1": {"count": 1, "file": {"count": 1}},
    }
    # missing values make no bucket; a bucket without sub-aggregations is empty, as in elastic4play
    assert await stats(db, JOB, {}, [{"_agg": "field", "_field": "label"}]) == {"#12 Phishing campaign": {}}
    by_type = {"_agg": "field", "_field": "attachment.contentType", "_select": [{"_agg": "count"}]}
    assert await stats(db, JOB, {}, [by_type]) == {
        "application/pdf": {"count": 1},
        "application/x-dosexec": {"count": 1},
    }


@on_db
async def test_stats_time(db: AsyncEngine) -> None:
    per_day = {"_agg": "time", "_fields": ["createdAt"], "_interval": "1d", "_select": [{"_agg": "count"}]}
    assert await stats(db, JOB, {}, [per_day]) == {
        str(D0 + n * DAY): {"createdAt": {"count": 2}} for n in range(4)
    }
    two_fields = per_day | {"_fields": ["createdAt", "endDate"], "_interval": "2d"}
    assert await stats(db, JOB, {}, [two_fields]) == {
        # 2-day buckets start at even days since the epoch: D0 is day 19676
        str(D0): {"createdAt": {"count": 4}, "endDate": {"count": 3}},
        str(D0 + 2 * DAY): {"createdAt": {"count": 4}, "endDate": {"count": 2}},
    }
    monday = D0 - 2 * DAY
    assert await stats(db, JOB, {}, [per_day | {"_interval": "1w"}]) == {
        str(monday): {"createdAt": {"count": 8}}
    }
    november = D0 - 14 * DAY
    assert await stats(db, JOB, {}, [per_day | {"_interval": "1M"}]) == {
        str(november): {"createdAt": {"count": 8}}
    }
    assert await stats(db, JOB, {}, [per_day | {"_interval": "month"}]) == {
        str(november): {"createdAt": {"count": 8}}
    }
    q4 = 1_696_118_400_000  # 2023-10-01
    assert await stats(db, JOB, {"status": "Success"}, [per_day | {"_interval": "1q"}]) == {
        str(q4): {"createdAt": {"count": 3}}
    }
    hourly = per_day | {"_interval": "1h", "_query": {"workerId": "w-abuse"}}
    assert await stats(db, JOB, {}, [hourly]) == {
        str(D0 + HOUR): {"createdAt": {"count": 1}},
        str(D0 + 2 * HOUR): {"createdAt": {"count": 1}},
        str(D0 + 2 * DAY + HOUR): {"createdAt": {"count": 1}},
        str(D0 + 3 * DAY + HOUR): {"createdAt": {"count": 2}},
    }


@on_db
async def test_stats_category(db: AsyncEngine) -> None:
    categories = {
        "_agg": "category",
        "_categories": {
            "done": {"_in": {"_field": "status", "_values": ["Success", "Failure"]}},
            "files": {"dataType": "file"},
            "none": {"status": "nope"},
        },
        "_select": [{"_agg": "count"}, {"_agg": "max", "_field": "tlp"}],
    }
    assert await stats(db, JOB, {}, [categories]) == {
        "done": {"count": 4, "max_tlp": 2.0},
        "files": {"count": 2, "max_tlp": 3.0},
        "none": {"count": 0, "max_tlp": None},
    }


@on_db
async def test_stats_where_narrows_everything(db: AsyncEngine) -> None:
    where = compile_query(JOB, {"organization": "acme"})
    assert await stats(db, JOB, {}, [{"_agg": "count"}], where=where) == {"count": 1}
    by_status = {"_agg": "field", "_field": "status", "_select": [{"_agg": "count"}]}
    assert await stats(db, JOB, {}, [by_status], where=where) == {"InProgress": {"count": 1}}


@pytest.mark.parametrize(
    ("stats_", "mentions"),
    [
        ({"_agg": "count"}, "JSON array"),
        ([{"_agg": "median", "_field": "tlp"}], "median"),
        (["count"], "JSON object"),
        ([{"_name": "x"}], "_agg"),
        ([{"_agg": "avg"}], "None"),
        ([{"_agg": "avg", "_field": "status"}], "status"),
        ([{"_agg": "sum", "_field": "password"}], "password"),
        ([{"_agg": "count", "_name": 5}], "_name"),
        ([{"_agg": "count", "_query": {"nope": 1}}], "nope"),
        ([{"_agg": "top", "_size": -1}], "_size"),
        ([{"_agg": "top", "_order": ["nope"]}], "nope"),
        ([{"_agg": "field", "_field": "roles"}], "roles"),
        ([{"_agg": "field", "_field": "status", "_size": "ten"}], "_size"),
        ([{"_agg": "field", "_field": "status", "_order": ["name"]}], "_order"),
        ([{"_agg": "field", "_field": "status", "_select": [{"_agg": "nope"}]}], "nope"),
        ([{"_agg": "time", "_fields": ["createdAt"], "_interval": "1x"}], "_interval"),
        ([{"_agg": "time", "_fields": ["createdAt"], "_interval": "2M"}], "_interval"),
        ([{"_agg": "time", "_fields": ["createdAt"], "_interval": "0d"}], "_interval"),
        ([{"_agg": "time", "_fields": ["createdAt"]}], "_interval"),
        ([{"_agg": "time", "_fields": ["status"], "_interval": "1d"}], "date"),
        ([{"_agg": "time", "_fields": [], "_interval": "1d"}], "date"),
        ([{"_agg": "time", "_fields": "createdAt", "_interval": "1d"}], "_fields"),
        ([{"_agg": "category", "_categories": [{"status": "Success"}]}], "_categories"),
        ([{"_agg": "category", "_categories": {"x": {"nope": 1}}}], "nope"),
    ],
)
def test_invalid_stats(stats_: Any, mentions: str) -> None:
    with pytest.raises(SearchError) as caught:
        compile_stats(
            USER if "roles" in json.dumps(stats_) or "password" in json.dumps(stats_) else JOB, stats_
        )
    assert mentions in caught.value.message


# --- the search models --------------------------------------------------------------------------


def test_models_expose_no_secret() -> None:
    for model in MODELS.values():
        for name, spec in model.fields.items():
            assert spec.column in model.table.c, (model.name, name)
            if spec.column in SECRET_OR_RAW_COLUMNS:
                assert spec.kind == "flag", (model.name, name)
    assert USER.fields["hasKey"] == FieldSpec("key_hash", "flag")
    with pytest.raises(ValueError):
        FieldSpec("attachment", "json", ("a'b",))
    with pytest.raises(ValueError):
        FieldSpec("data", "blob")


def test_model_relations() -> None:
    assert {m.name: m.parent for m in MODELS.values()} == {
        "organization": None,
        "user": None,
        "worker": ("organization", "organization"),
        "job": None,
        "report": ("job", "job"),
        "artifact": ("report", "report"),
    }
    assert children_of(JOB) == {"report": REPORT}
    assert children_of(REPORT) == {"artifact": ARTIFACT}
    assert children_of(ORGANIZATION) == {"worker": WORKER}
    for model in MODELS.values():
        assert model.fields["id"] == model.fields["_id"]
        assert model.default_sort[-1] == "-id"
    assert ORGANIZATION.fields["name"].column == "id"
    assert USER.fields["login"].column == "id"
    for alias, field in (("analyzerId", "workerId"), ("analyzerName", "workerName"), ("date", "createdAt")):
        assert JOB.fields[alias] == JOB.fields[field]
