"""The searchable entities: which wire field names a client may search and sort on, and what they mean.

The search DSL (store/query.py) never touches a column that is not listed here, which is what keeps
secrets (API keys, passwords, worker configuration) and raw blobs (job input, report bodies) out of reach
of `_search`, `sort` and `_stats`, and keeps user-supplied field names away from SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Column, Table

from neurocortex.errors import SearchError

from . import tables

# keyword: exact string (Cortex "string"/enum attributes)
# text:    free text; exact for _field/_value, substring for _like and query strings
# number, date: numeric comparisons (dates are epoch milliseconds)
# list:    JSON array of strings; equality means "contains the element"
# json:    a value inside a JSON column, at FieldSpec.path, whose own kind is FieldSpec.value_kind
# raw:     stored as given (job/artifact `data`); exact, substring and wildcard matches only
# flag:    a boolean the entity JSON derives from whether a (secret) column is set, e.g. user hasKey
KINDS = frozenset({"keyword", "text", "number", "date", "list", "json", "raw", "flag"})
JSON_VALUE_KINDS = frozenset({"keyword", "number", "list", "object"})

# Columns whose content must never be matched or sorted on. A "flag" may still look at whether they are
# set, which the entity JSON discloses anyway (hasKey, hasPassword).
SECRET_OR_RAW_COLUMNS = frozenset(
    {
        "key_hash",
        "key_encrypted",
        "password",
        "preferences",
        "avatar",
        "configuration",
        "config",
        "lease_owner",
        "lease_until",
        "attempts",
        "input",
        "full",
        "summary",
        "operations",
        "parameters",
    }
)

_JSON_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FieldSpec:
    column: str
    kind: str
    # Only for kind "json": the keys leading to the value inside the JSON column (empty = the whole value).
    path: tuple[str, ...] = ()
    value_kind: str = "keyword"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")
        if self.kind == "json":
            if self.value_kind not in JSON_VALUE_KINDS:
                raise ValueError(f"unknown JSON value kind {self.value_kind!r}")
            # The path is written into SQL as a literal, so it must stay a plain identifier.
            if not all(_JSON_KEY.match(key) for key in self.path):
                raise ValueError(f"invalid JSON path {self.path!r}")
        elif self.path:
            raise ValueError("only json fields have a path")


@dataclass(frozen=True, eq=False)  # identity hash: models are singletons and serve as cache keys
class SearchModel:
    name: str
    table: Table
    fields: dict[str, FieldSpec]
    parent: tuple[str, str] | None
    default_sort: tuple[str, ...]

    def __post_init__(self) -> None:
        for wire, spec in self.fields.items():
            if spec.column not in self.table.c:
                raise ValueError(f"{self.name}.{wire}: no column {spec.column!r} in {self.table.name}")
            if spec.column in SECRET_OR_RAW_COLUMNS and spec.kind != "flag":
                raise ValueError(f"{self.name}.{wire}: column {spec.column!r} must not be searchable")
        if self.parent is not None and self.parent[1] not in self.table.c:
            raise ValueError(f"{self.name}: no parent column {self.parent[1]!r}")

    def field(self, name: str) -> FieldSpec:
        """The spec of a wire field name, or a SearchError naming the field."""
        spec = self.fields.get(name) if isinstance(name, str) else None
        if spec is None:
            raise SearchError(f"Unknown field {name!r} for {self.name}")
        return spec

    def column(self, spec: FieldSpec) -> Column:
        return self.table.c[spec.column]


def _f(column: str, kind: str = "keyword") -> FieldSpec:
    return FieldSpec(column, kind)


def _ids() -> dict[str, FieldSpec]:
    return {"id": _f("id"), "_id": _f("id")}


def _system() -> dict[str, FieldSpec]:
    return {
        "createdBy": _f("createdBy"),
        "createdAt": _f("createdAt", "date"),
        "updatedBy": _f("updatedBy"),
        "updatedAt": _f("updatedAt", "date"),
    }


def _attachment() -> dict[str, FieldSpec]:
    def at(*path: str, value_kind: str = "keyword") -> FieldSpec:
        return FieldSpec("attachment", "json", path, value_kind)

    return {
        "attachment": at(value_kind="object"),
        "attachment.id": at("id"),
        "attachment.name": at("name"),
        "attachment.contentType": at("contentType"),
        "attachment.size": at("size", value_kind="number"),
        "attachment.hashes": at("hashes", value_kind="list"),
    }


# Insertion order, newest first, as the spec recommends (Cortex itself applies no default sort). Ids are
# time-ordered for jobs, reports and artifacts, so "-id" settles equal timestamps in insertion order too.
_NEWEST_FIRST = ("-createdAt", "-id")

ORGANIZATION = SearchModel(
    name="organization",
    table=tables.organization,
    fields={
        **_ids(),
        "name": _f("id"),
        "description": _f("description", "text"),
        "status": _f("status"),
        **_system(),
    },
    parent=None,
    default_sort=_NEWEST_FIRST,
)

USER = SearchModel(
    name="user",
    table=tables.user,
    fields={
        **_ids(),
        "login": _f("id"),
        "name": _f("name"),
        "roles": _f("roles", "list"),
        "status": _f("status"),
        "organization": _f("organization"),
        "hasKey": _f("key_hash", "flag"),
        "hasPassword": _f("password", "flag"),
        **_system(),
    },
    parent=None,  # in Cortex a user refers to its organization but is not a child document of it
    default_sort=_NEWEST_FIRST,
)

WORKER = SearchModel(
    name="worker",
    table=tables.worker,
    fields={
        **_ids(),
        "name": _f("name"),
        "type": _f("type"),
        "version": _f("version"),
        "workerDefinitionId": _f("workerDefinitionId"),
        "analyzerDefinitionId": _f("workerDefinitionId"),
        "description": _f("description", "text"),
        "author": _f("author", "text"),
        "url": _f("url", "text"),
        "license": _f("license", "text"),
        "command": _f("command", "text"),
        "dockerImage": _f("dockerImage", "text"),
        "dataTypeList": _f("dataTypeList", "list"),
        "baseConfig": _f("baseConfig"),
        "rate": _f("rate", "number"),
        "rateUnit": _f("rateUnit"),
        "jobCache": _f("jobCache", "number"),
        "jobTimeout": _f("jobTimeout", "number"),
        "maxConcurrency": _f("maxConcurrency", "number"),
        "rateLimitPolicy": _f("rateLimitPolicy"),
        "runner": _f("runner"),
        "organization": _f("organization"),
        **_system(),
    },
    parent=("organization", "organization"),
    default_sort=_NEWEST_FIRST,
)

JOB = SearchModel(
    name="job",
    table=tables.job,
    fields={
        **_ids(),
        "workerId": _f("workerId"),
        "analyzerId": _f("workerId"),
        "workerName": _f("workerName"),
        "analyzerName": _f("workerName"),
        "workerDefinitionId": _f("workerDefinitionId"),
        "analyzerDefinitionId": _f("workerDefinitionId"),
        "organization": _f("organization"),
        "status": _f("status"),
        "dataType": _f("dataType"),
        "data": _f("data", "raw"),
        **_attachment(),
        "tlp": _f("tlp", "number"),
        "pap": _f("pap", "number"),
        "message": _f("message", "text"),
        "label": _f("label"),
        "type": _f("type"),
        "cacheTag": _f("cacheTag"),
        "startDate": _f("startDate", "date"),
        "endDate": _f("endDate", "date"),
        "errorMessage": _f("errorMessage", "text"),
        "date": _f("createdAt", "date"),
        **_system(),
    },
    parent=None,
    default_sort=_NEWEST_FIRST,
)

REPORT = SearchModel(
    name="report",
    table=tables.report,
    fields={**_ids(), "job": _f("job"), **_system()},
    parent=("job", "job"),
    default_sort=_NEWEST_FIRST,
)

ARTIFACT = SearchModel(
    name="artifact",
    table=tables.artifact,
    fields={
        **_ids(),
        "dataType": _f("dataType"),
        "data": _f("data", "raw"),
        **_attachment(),
        "tlp": _f("tlp", "number"),
        "tags": _f("tags", "list"),
        "message": _f("message", "text"),
        "report": _f("report"),
        "job": _f("job"),
        **_system(),
    },
    parent=("report", "report"),
    default_sort=_NEWEST_FIRST,
)

AUDIT = SearchModel(
    name="audit",
    table=tables.audit,
    fields={
        **_ids(),
        "createdAt": _f("createdAt", "date"),
        "date": _f("createdAt", "date"),
        "createdBy": _f("createdBy"),
        "user": _f("createdBy"),
        "organization": _f("organization"),
        "action": _f("action"),
        "objectType": _f("objectType"),
        "objectId": _f("objectId"),
        "outcome": _f("outcome"),
        "address": _f("address"),
    },
    parent=None,
    default_sort=_NEWEST_FIRST,
)

MODELS: dict[str, SearchModel] = {m.name: m for m in (ORGANIZATION, USER, WORKER, JOB, REPORT, ARTIFACT)}


def children_of(model: SearchModel) -> dict[str, SearchModel]:
    """The models whose parent is `model`, by name (e.g. job -> {"report": REPORT})."""
    return {m.name: m for m in MODELS.values() if m.parent is not None and m.parent[0] == model.name}
