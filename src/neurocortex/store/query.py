"""Cortex's search DSL, paging, sorting and `_stats` aggregations, compiled to SQLAlchemy Core.

The grammar is elastic4play's (spec/cortex-api.md §1.4, §1.5, §1.7). Expressions work on SQLite and
PostgreSQL alike; the few places where the two differ (JSON arrays and paths) are small constructs with a
rendering per dialect. Field names only ever reach SQL through the FieldSpec map of search_models.py, and
every value a client sends is a bound parameter.

Semantics worth knowing:

- A missing field never matches a condition, so `_not` of a condition includes the entities lacking the
  field (Elasticsearch's behaviour): negation is `NOT coalesce(cond, false)`.
- `{"_or": []}` matches everything, as an empty bool query does in Elasticsearch; `{"_in": ...}` with no
  values matches nothing.
- `_like` is a case-insensitive substring match on string fields. `_wildcard` and query-string wildcards
  are case-insensitive too (the same on both databases); on text fields they may match inside the value,
  as they would match one word of an analysed field.
- Equality on a list field (roles, dataTypeList, tags) means "the list contains the value".
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, False_, True_
from sqlalchemy.sql.visitors import InternalTraversal

from neurocortex.errors import SearchError

from . import lucene
from .search_models import MODELS, SearchModel, children_of

MAX_DEPTH = 32  # nesting of DSL objects (and of aggregations)
MAX_TERMS = 10_000  # leaf conditions plus _in values: keeps statements under the databases' parameter limits
DEFAULT_LIMIT = 10
_MAX_ROWS = 2**62  # keeps OFFSET/LIMIT inside a 64-bit integer


# --- JSON on two dialects -----------------------------------------------------------------------


class JsonValue(ColumnElement[Any]):
    """The scalar at `path` inside JSON column `column`, as a string or (numeric=True) a number.

    NULL when the path is missing or holds JSON null.
    """

    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("path", InternalTraversal.dp_string_list),
        ("numeric", InternalTraversal.dp_boolean),
    ]

    def __init__(self, column: ColumnElement[Any], path: tuple[str, ...], numeric: bool) -> None:
        self.column = column
        self.path = tuple(path)
        self.numeric = numeric
        self.type = sa.Float() if numeric else sa.String()

    @property
    def _from_objects(self) -> list[Any]:
        return self.column._from_objects


class JsonTest(ColumnElement[bool]):
    """A test on the JSON value at `path` (empty = the whole column):

    - "present": it exists and is not JSON null;
    - "nonempty": it is an array with at least one element;
    - "has": it is an array with an element equal to the string `operand`;
    - "has_like": it is an array with an element matching the (case-insensitive) LIKE pattern `operand`.
    """

    type = sa.Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("path", InternalTraversal.dp_string_list),
        ("test", InternalTraversal.dp_string),
        ("operand", InternalTraversal.dp_clauseelement),
    ]

    def __init__(
        self,
        column: ColumnElement[Any],
        path: tuple[str, ...],
        test: str,
        operand: ColumnElement[Any] | None = None,
    ) -> None:
        self.column = column
        self.path = tuple(path)
        self.test = test
        self.operand = operand

    @property
    def _from_objects(self) -> list[Any]:
        return self.column._from_objects


# Paths come from search_models.FieldSpec, which only allows identifiers, so they can be SQL literals.
def _sqlite_path(path: tuple[str, ...]) -> str:
    return "'$" + "".join(f".{key}" for key in path) + "'"


def _pg_jsonb(compiler: Any, element: JsonValue | JsonTest, kw: dict[str, Any]) -> str:
    value = f"CAST({compiler.process(element.column, **kw)} AS JSONB)"
    if element.path:
        value = f"({value} #> '{{{','.join(element.path)}}}')"
    return value


@compiles(JsonValue, "sqlite")
def _json_value_sqlite(element: JsonValue, compiler: Any, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.column, **kw)}, {_sqlite_path(element.path)})"


@compiles(JsonValue, "postgresql")
def _json_value_postgresql(element: JsonValue, compiler: Any, **kw: Any) -> str:
    value = _pg_jsonb(compiler, element, kw)
    if element.numeric:
        return (
            f"(CASE WHEN jsonb_typeof({value}) = 'number' "
            f"THEN CAST(({value} #>> '{{}}') AS DOUBLE PRECISION) END)"
        )
    return f"({value} #>> '{{}}')"


@compiles(JsonTest, "sqlite")
def _json_test_sqlite(element: JsonTest, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    path = _sqlite_path(element.path)
    if element.test == "present":
        return f"(coalesce(json_type({column}, {path}), 'null') != 'null')"
    if element.test == "nonempty":
        return f"(coalesce(json_array_length({column}, {path}), 0) > 0)"
    operand = compiler.process(element.operand, **kw)
    if element.test == "has":
        condition = f"_e.value = {operand}"
    else:
        condition = f"lower(_e.value) LIKE lower({operand}) ESCAPE '\\'"
    return f"EXISTS (SELECT 1 FROM json_each({column}, {path}) AS _e WHERE {condition})"


@compiles(JsonTest, "postgresql")
def _json_test_postgresql(element: JsonTest, compiler: Any, **kw: Any) -> str:
    value = _pg_jsonb(compiler, element, kw)
    if element.test == "present":
        return f"(coalesce(jsonb_typeof({value}), 'null') <> 'null')"
    if element.test == "nonempty":
        return f"coalesce(jsonb_typeof({value}) = 'array' AND {value} <> '[]'::jsonb, false)"
    operand = compiler.process(element.operand, **kw)
    if element.test == "has":
        # Containment of a one-element array can use a GIN index on the column.
        return f"({value} @> jsonb_build_array(CAST({operand} AS VARCHAR)))"
    array = f"CASE WHEN jsonb_typeof({value}) = 'array' THEN {value} ELSE '[]'::jsonb END"
    return (
        f"EXISTS (SELECT 1 FROM jsonb_array_elements_text({array}) AS _e(v) "
        f"WHERE _e.v ILIKE {operand} ESCAPE '\\')"
    )


@compiles(JsonValue)
@compiles(JsonTest)
def _json_unsupported(element: Any, compiler: Any, **kw: Any) -> str:
    raise CompileError(f"JSON search is implemented for SQLite and PostgreSQL, not {compiler.dialect.name}")


# --- fields and values --------------------------------------------------------------------------

_STRING_KINDS = frozenset({"keyword", "text", "raw"})
_NUMERIC_KINDS = frozenset({"number", "date"})


@dataclass(frozen=True)
class _Target:
    """A field resolved against a model: its kind (a JSON field takes the kind of its value)."""

    name: str
    kind: str  # keyword text raw number date list object flag
    column: sa.Column[Any]
    path: tuple[str, ...]

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.column.name, self.path

    def scalar(self) -> ColumnElement[Any]:
        if self.kind in ("list", "object"):
            raise SearchError(f"Field {self.name!r} is a {self.kind} and cannot be used here")
        if self.kind == "flag":
            return self.column.is_not(None)
        if self.path:
            return JsonValue(self.column, self.path, numeric=self.kind in _NUMERIC_KINDS)
        return self.column


def _resolve(model: SearchModel, name: Any) -> _Target:
    spec = model.field(name)
    kind = spec.value_kind if spec.kind == "json" else spec.kind
    return _Target(name, kind, model.column(spec), spec.path)


@cache
def _default_targets(model: SearchModel) -> tuple[_Target, ...]:
    """The fields a bare query-string term searches: every string-like field, each column once."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    targets = []
    for name in model.fields:
        target = _resolve(model, name)
        if target.kind in _STRING_KINDS | {"list"} and target.key not in seen:
            seen.add(target.key)
            targets.append(target)
    return tuple(targets)


def _scalar_value(value: Any, name: str) -> str | int | float | bool:
    if isinstance(value, str | int | bool) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise SearchError(f"Invalid value {value!r} for field {name!r}: expected a string, number or boolean")


def _text(value: Any, name: str) -> str:
    value = _scalar_value(value, name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_INTEGER = re.compile(r"^[+-]?\d+$")


def _number(value: Any, name: str) -> int | float:
    value = _scalar_value(value, name)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.match(text):
            return int(text)
        try:
            value = float(text)
        except ValueError:
            raise SearchError(f"Field {name!r} expects a number, not {text!r}") from None
        if not math.isfinite(value):
            raise SearchError(f"Field {name!r} expects a number, not {text!r}")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _date(value: Any, name: str) -> int | float:
    # Cortex accepts epoch milliseconds (number or numeric string) and yyyyMMdd'T'HHmmssZ.
    if isinstance(value, str) and "T" in value:
        try:
            moment = datetime.strptime(value.strip(), "%Y%m%dT%H%M%S%z")
        except ValueError:
            raise SearchError(
                f"Field {name!r} expects a date (epoch milliseconds or yyyyMMdd'T'HHmmssZ), not {value!r}"
            ) from None
        return int(moment.timestamp() * 1000)
    return _number(value, name)


def _flag(value: Any, name: str) -> bool:
    value = _scalar_value(value, name)
    if isinstance(value, str):
        value = {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower(), value)
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise SearchError(f"Field {name!r} expects true or false, not {value!r}")


def _number_literal(value: int | float) -> ColumnElement[Any]:
    # Typed explicitly so that a fractional bound against an integer column is not truncated.
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return sa.literal(value, sa.BigInteger())
    return sa.literal(float(value), sa.Float())


def _operand(target: _Target, value: Any) -> Any:
    """The value to compare a scalar field with, converted for its kind."""
    if target.kind == "number":
        return _number_literal(_number(value, target.name))
    if target.kind == "date":
        return _number_literal(_date(value, target.name))
    return _text(value, target.name)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def wildcard_to_like(pattern: str) -> str:
    """Turn a Lucene/Elasticsearch wildcard (`*`, `?`, backslash escapes) into a LIKE pattern (escape `\\`)."""
    out = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(_escape_like(next(chars, "\\")))
        elif c == "*":
            out.append("%")
        elif c == "?":
            out.append("_")
        else:
            out.append(_escape_like(c))
    return "".join(out)


# --- conditions on one field --------------------------------------------------------------------


def _eq(target: _Target, value: Any) -> ColumnElement[bool]:
    if target.kind == "list":
        return JsonTest(target.column, target.path, "has", sa.literal(_text(value, target.name), sa.String()))
    if target.kind == "flag":
        return target.column.is_not(None) if _flag(value, target.name) else target.column.is_(None)
    return target.scalar() == _operand(target, value)


def _ilike(target: _Target, pattern: str) -> ColumnElement[bool]:
    if target.kind == "list":
        return JsonTest(target.column, target.path, "has_like", sa.literal(pattern, sa.String()))
    if target.kind not in _STRING_KINDS:
        raise SearchError(f"Field {target.name!r} is not a string field; use an exact or range match")
    return target.scalar().ilike(pattern, escape="\\")


def _like(target: _Target, value: Any) -> ColumnElement[bool]:
    if target.kind in _NUMERIC_KINDS or target.kind == "flag":
        return _eq(target, value)
    return _ilike(target, f"%{_escape_like(_text(value, target.name))}%")


def _wildcard(target: _Target, value: Any) -> ColumnElement[bool]:
    if not isinstance(value, str):
        raise SearchError(f"A wildcard on field {target.name!r} must be a string")
    pattern = wildcard_to_like(value)
    if target.kind == "text":
        pattern = f"%{pattern}%"
    return _ilike(target, pattern)


def _exists(target: _Target) -> ColumnElement[bool]:
    if target.kind == "flag":
        return sa.true()
    if target.kind == "list":
        return JsonTest(target.column, target.path, "nonempty")
    if target.path or target.kind == "object":
        return JsonTest(target.column, target.path, "present")
    return target.column.is_not(None)


_COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "_gt": operator.gt,
    "_gte": operator.ge,
    "_lt": operator.lt,
    "_lte": operator.le,
}


def _compare(target: _Target, op: str, value: Any) -> ColumnElement[bool]:
    if target.kind not in _STRING_KINDS | _NUMERIC_KINDS:
        raise SearchError(f"Field {target.name!r} is a {target.kind} and has no order")
    return _COMPARISONS[op](target.scalar(), _operand(target, value))


def _negate(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    if isinstance(condition, True_):
        return sa.false()
    if isinstance(condition, False_):
        return sa.true()
    # NULL (a missing field) counts as "does not match", so its negation matches.
    return sa.not_(sa.func.coalesce(condition, sa.false(), type_=sa.Boolean()))


def _all(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return sa.and_(*conditions) if conditions else sa.true()


def _any(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return sa.or_(*conditions) if conditions else sa.false()


# --- the DSL ------------------------------------------------------------------------------------


def compile_query(model: SearchModel, query: Any) -> ColumnElement[bool]:
    """The WHERE condition for a Cortex query on `model`; None or {} match everything."""
    if query is None:
        return sa.true()
    return _QueryCompiler(model).compile(query, 0)


def _require_dict(value: Any, what: str, keys: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SearchError(f"Invalid {what}: expected a JSON object, got {value!r}")
    if keys is not None and not keys <= value.keys():
        missing = ", ".join(sorted(keys - value.keys()))
        raise SearchError(f"Invalid {what}: missing {missing}")
    return value


def _require_list(value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise SearchError(f"Invalid {what}: expected a JSON array, got {value!r}")
    return value


class _QueryCompiler:
    def __init__(self, model: SearchModel, budget: list[int] | None = None) -> None:
        self.model = model
        # shared with the compilers of parent and child models, so the whole query has one budget
        self.budget = budget if budget is not None else [MAX_TERMS]

    def spend(self, count: int = 1) -> None:
        self.budget[0] -= count
        if self.budget[0] < 0:
            raise SearchError(f"Query too large (more than {MAX_TERMS} conditions and values)")

    def target(self, name: Any) -> _Target:
        self.spend()
        return _resolve(self.model, name)

    def compile(self, query: Any, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise SearchError(f"Query nested deeper than {MAX_DEPTH} levels")
        if not isinstance(query, dict):
            raise SearchError(f"Invalid query: expected a JSON object, got {query!r}")
        if not query:
            return sa.true()
        if "_field" in query or "_value" in query:
            if query.keys() != {"_field", "_value"}:
                raise SearchError(f"Invalid query {query!r}: expected exactly _field and _value")
            return _eq(self.target(query["_field"]), query["_value"])
        if len(query) != 1:
            raise SearchError(f"Invalid query {query!r}: an object holds one operator or one field")
        ((key, argument),) = query.items()
        handler = self.OPERATORS.get(key)
        if handler is not None:
            return handler(self, argument, depth + 1)
        if key.startswith("_"):
            raise SearchError(f"Unknown query operator {key!r}")
        return _eq(self.target(key), argument)  # shorthand {"field": value}

    def op_and(self, argument: Any, depth: int) -> ColumnElement[bool]:
        return _all([self.compile(q, depth) for q in _require_list(argument, "_and")])

    def op_or(self, argument: Any, depth: int) -> ColumnElement[bool]:
        queries = _require_list(argument, "_or")
        if not queries:
            return sa.true()  # an empty bool "should" matches everything in Elasticsearch
        return _any([self.compile(q, depth) for q in queries])

    def op_not(self, argument: Any, depth: int) -> ColumnElement[bool]:
        return _negate(self.compile(argument, depth))

    def op_any(self, argument: Any, depth: int) -> ColumnElement[bool]:
        return sa.true()

    def op_like(self, argument: Any, depth: int) -> ColumnElement[bool]:
        argument = _require_dict(argument, "_like", {"_field", "_value"})
        return _like(self.target(argument["_field"]), argument["_value"])

    def op_wildcard(self, argument: Any, depth: int) -> ColumnElement[bool]:
        argument = _require_dict(argument, "_wildcard", {"_field", "_value"})
        return _wildcard(self.target(argument["_field"]), argument["_value"])

    def op_in(self, argument: Any, depth: int) -> ColumnElement[bool]:
        argument = _require_dict(argument, "_in", {"_field", "_values"})
        target = self.target(argument["_field"])
        values = _require_list(argument["_values"], "_in _values")
        self.spend(len(values))
        if not values:
            return sa.false()
        if target.kind in _STRING_KINDS:
            return target.scalar().in_([_text(v, target.name) for v in values])
        return _any([_eq(target, v) for v in values])

    def op_contains(self, argument: Any, depth: int) -> ColumnElement[bool]:
        if not isinstance(argument, str):
            raise SearchError(f"Invalid _contains: expected a field name, got {argument!r}")
        return _exists(self.target(argument))

    def op_compare(self, op: str, argument: Any) -> ColumnElement[bool]:
        argument = _require_dict(argument, op)
        if len(argument) != 1:
            raise SearchError(f"Invalid {op}: expected one {{field: value}}, got {argument!r}")
        ((name, value),) = argument.items()
        return _compare(self.target(name), op, value)

    def op_between(self, argument: Any, depth: int) -> ColumnElement[bool]:
        argument = _require_dict(argument, "_between", {"_field", "_from", "_to"})
        target = self.target(argument["_field"])
        return sa.and_(_compare(target, "_gt", argument["_from"]), _compare(target, "_lt", argument["_to"]))

    def op_id(self, argument: Any, depth: int) -> ColumnElement[bool]:
        self.spend()
        return self.model.table.c.id == _text(argument, "_id")

    def op_type(self, argument: Any, depth: int) -> ColumnElement[bool]:
        if not isinstance(argument, str):
            raise SearchError(f"Invalid _type: expected a model name, got {argument!r}")
        return sa.true() if argument == self.model.name else sa.false()

    def op_parent(self, argument: Any, depth: int) -> ColumnElement[bool]:
        argument = _require_dict(argument, "_parent", {"_type"})
        parent_type = argument["_type"]
        if self.model.parent is None or parent_type != self.model.parent[0]:
            raise SearchError(f"A {self.model.name} has no parent of type {parent_type!r}")
        link = self.model.table.c[self.model.parent[1]]
        self.spend()
        if "_id" in argument:
            return link == _text(argument["_id"], "_parent _id")
        if "_query" not in argument:
            raise SearchError("Invalid _parent: expected _id or _query")
        parent = MODELS[parent_type]
        condition = _QueryCompiler(parent, self.budget).compile(argument["_query"], depth)
        # Uncorrelated: the set of matching parent ids.
        return link.in_(sa.select(parent.table.c.id).where(condition).correlate(None))

    def op_child(self, argument: Any, depth: int) -> ColumnElement[bool]:
        argument = _require_dict(argument, "_child", {"_type", "_query"})
        child = children_of(self.model).get(argument["_type"])
        if child is None:
            raise SearchError(f"A {self.model.name} has no child of type {argument['_type']!r}")
        assert child.parent is not None
        condition = _QueryCompiler(child, self.budget).compile(argument["_query"], depth)
        link = child.table.c[child.parent[1]]
        return (
            sa.select(sa.literal_column("1"))
            .select_from(child.table)
            .where(link == self.model.table.c.id, condition)
            .correlate(self.model.table)
            .exists()
        )

    def op_string(self, argument: Any, depth: int) -> ColumnElement[bool]:
        return self.query_string(lucene.parse(argument))

    def query_string(self, node: lucene.Node) -> ColumnElement[bool]:
        if isinstance(node, lucene.MatchAll):
            return sa.true()
        if isinstance(node, lucene.And):
            return _all([self.query_string(n) for n in node.items])
        if isinstance(node, lucene.Or):
            return _any([self.query_string(n) for n in node.items])
        if isinstance(node, lucene.Not):
            return _negate(self.query_string(node.item))
        if isinstance(node, lucene.Exists):
            return _exists(self.target(node.field))
        if isinstance(node, lucene.Range):
            if node.field is None:
                raise SearchError("A range in a query string needs a field (field:[a TO b])")
            target = self.target(node.field)
            bounds = []
            if node.low is not None:
                bounds.append(_compare(target, "_gte" if node.include_low else "_gt", node.low))
            if node.high is not None:
                bounds.append(_compare(target, "_lte" if node.include_high else "_lt", node.high))
            return _all(bounds) if bounds else _exists(target)
        assert isinstance(node, lucene.Term)
        if node.field is not None:
            return self.term(self.target(node.field), node)
        self.spend()
        return _any([self.term(t, node) for t in _default_targets(self.model)])

    @staticmethod
    def term(target: _Target, node: lucene.Term) -> ColumnElement[bool]:
        if node.kind == "wildcard":
            return _wildcard(target, node.value)
        if target.kind == "text":
            return _like(target, node.value)  # text fields are analysed: a word matches inside them
        return _eq(target, node.value)

    OPERATORS: dict[str, Callable[[_QueryCompiler, Any, int], ColumnElement[bool]]] = {
        "_and": op_and,
        "_or": op_or,
        "_not": op_not,
        "_any": op_any,
        "_like": op_like,
        "_wildcard": op_wildcard,
        "_string": op_string,
        "_in": op_in,
        "_contains": op_contains,
        "_gt": lambda self, a, d: self.op_compare("_gt", a),
        "_gte": lambda self, a, d: self.op_compare("_gte", a),
        "_lt": lambda self, a, d: self.op_compare("_lt", a),
        "_lte": lambda self, a, d: self.op_compare("_lte", a),
        "_between": op_between,
        "_id": op_id,
        "_type": op_type,
        "_parent": op_parent,
        "_child": op_child,
    }


# --- paging and sorting -------------------------------------------------------------------------


def parse_range(value: str | None) -> tuple[int, int | None]:
    """(offset, limit) of Cortex's `range` parameter; limit None means everything.

    Absent: 0-10. "all": everything. "a-b": offset a, limit b-a. A missing, invalid or not greater end
    gives limit 10; a negative or invalid offset gives 0. (elastic4play DBUtils.)
    """
    if value is None:
        return 0, DEFAULT_LIMIT
    value = str(value)
    if value == "all":
        return 0, None
    start, end = (value + "-0").split("-", 2)[:2]
    offset = min(max(0, int(start)), _MAX_ROWS) if _INTEGER.match(start) else 0
    stop = min(int(end), _MAX_ROWS) if _INTEGER.match(end) else offset + DEFAULT_LIMIT
    if stop <= offset:
        return offset, DEFAULT_LIMIT
    return offset, stop - offset


def order_by(model: SearchModel, sort: list[str] | str | None) -> list[ColumnElement[Any]]:
    """ORDER BY clauses for Cortex's `sort` ("+f", "-f", "f"); the model's default when empty.

    Later duplicates of a field are dropped, missing values sort last in both directions (as in
    Elasticsearch) and a final id-descending key makes paging stable.
    """
    if isinstance(sort, str):
        sort = [sort]
    if sort is not None and not isinstance(sort, list | tuple):
        raise SearchError(f"Invalid sort: expected a list of fields, got {sort!r}")
    items = []
    for item in sort or ():
        if not isinstance(item, str):
            raise SearchError(f"Invalid sort field {item!r}")
        if item.strip():
            items.append(item.strip())
    clauses: list[ColumnElement[Any]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for item in [*(items or model.default_sort), "-id"]:
        descending = item.startswith("-")
        name = item[1:] if item[0] in "+-" else item
        target = _resolve(model, name)
        if target.key in seen:
            continue
        seen.add(target.key)
        expression = _sort_expression(target)
        clause = expression.desc() if descending else expression.asc()
        nullable = bool(target.path) or (target.kind != "flag" and target.column.nullable)
        clauses.append(clause.nulls_last() if nullable else clause)
    return clauses


def _sort_expression(target: _Target) -> ColumnElement[Any]:
    if target.kind in ("list", "object"):
        raise SearchError(f"Cannot sort on field {target.name!r}: it is a {target.kind}")
    return target.scalar()


# --- aggregations (POST /api/organization/_stats) -----------------------------------------------


class Aggregation:
    """One compiled aggregation; `run` returns the part of the _stats answer it contributes."""

    model: SearchModel
    where: ColumnElement[bool]

    async def run(self, conn: AsyncConnection, scope: ColumnElement[bool]) -> dict[str, Any]:
        raise NotImplementedError

    def select(self, *columns: Any, scope: ColumnElement[bool]) -> sa.Select[Any]:
        return sa.select(*columns).select_from(self.model.table).where(scope, self.where)


async def _run_all(
    aggregations: list[Aggregation], conn: AsyncConnection, scope: ColumnElement[bool]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for aggregation in aggregations:
        result.update(await aggregation.run(conn, scope))
    return result


@dataclass
class CountAggregation(Aggregation):
    model: SearchModel
    where: ColumnElement[bool]
    name: str

    async def run(self, conn: AsyncConnection, scope: ColumnElement[bool]) -> dict[str, Any]:
        return {self.name: await conn.scalar(self.select(sa.func.count(), scope=scope))}


def _plain_count(aggregation: Aggregation) -> bool:
    """A count with no filter of its own: in a bucket, the bucket's size."""
    return isinstance(aggregation, CountAggregation) and isinstance(aggregation.where, sa.sql.elements.True_)


@dataclass
class MetricAggregation(Aggregation):
    model: SearchModel
    where: ColumnElement[bool]
    name: str
    function: str  # avg min max sum
    target: _Target

    async def run(self, conn: AsyncConnection, scope: ColumnElement[bool]) -> dict[str, Any]:
        value = await conn.scalar(
            self.select(getattr(sa.func, self.function)(self.target.scalar()), scope=scope)
        )
        if value is None:
            # Elasticsearch's sum of nothing is 0; avg, min and max of nothing have no value.
            return {self.name: 0.0 if self.function == "sum" else None}
        return {self.name: float(value)}  # Elasticsearch metrics are doubles


@dataclass
class TopAggregation(Aggregation):
    model: SearchModel
    where: ColumnElement[bool]
    name: str
    size: int
    order: list[ColumnElement[Any]]

    async def run(self, conn: AsyncConnection, scope: ColumnElement[bool]) -> dict[str, Any]:
        statement = self.select(self.model.table, scope=scope).order_by(*self.order).limit(self.size)
        # plain dicts of the stored columns: the caller renders them as entities
        return {self.name: [dict(row) for row in (await conn.execute(statement)).mappings()]}


@dataclass
class FieldAggregation(Aggregation):
    """Buckets per distinct value of a field: {"<value>": {sub-aggregations}, ...}."""

    model: SearchModel
    where: ColumnElement[bool]
    target: _Target
    size: int
    order: list[tuple[str, bool]]  # ("count" | "key", descending)
    select_: list[Aggregation]

    async def run(self, conn: AsyncConnection, scope: ColumnElement[bool]) -> dict[str, Any]:
        value = self.target.scalar()
        key = value.label("bucket_key")
        count = sa.func.count().label("bucket_count")
        ordering = []
        for what, descending in self.order:
            column = count if what == "count" else key
            ordering.append(column.desc() if descending else column.asc())
        statement = (
            self.select(key, count, scope=scope)
            .where(value.is_not(None))
            .group_by(value)
            .order_by(*ordering, key.asc())
            .limit(self.size)
        )
        result: dict[str, Any] = {}
        for row in (await conn.execute(statement)).all():
            bucket: dict[str, Any] = {}
            others = []
            for aggregation in self.select_:
                if _plain_count(aggregation):
                    bucket[aggregation.name] = row.bucket_count  # the bucket's size, already counted
                else:
                    others.append(aggregation)
            if others:
                bucket_scope = sa.and_(scope, self.where, value == row.bucket_key)
                bucket |= await _run_all(others, conn, bucket_scope)
            result[_bucket_name(row.bucket_key)] = bucket
        return result


@dataclass
class TimeAggregation(Aggregation):
    """Date histogram over each field: {"<bucket start, epoch ms>": {"<field>": {sub-aggregations}}}."""

    model: SearchModel
    where: ColumnElement[bool]
    targets: list[_Target]
    interval: tuple[int, str]  # (count, unit)
    select_: list[Aggregation]

    async def run(self, conn: AsyncConnection, scope: ColumnElement[bool]) -> dict[str, Any]:
        result: dict[str, dict[str, Any]] = {}
        for target in self.targets:
            for start, end in await self.buckets(conn, scope, target):
                column = target.scalar()
                bucket_scope = sa.and_(scope, self.where, column >= start, column < end)
                sub = await _run_all(self.select_, conn, bucket_scope)
                result.setdefault(str(start), {})[target.name] = sub
        return dict(sorted(result.items(), key=lambda item: int(item[0])))

    async def buckets(
        self, conn: AsyncConnection, scope: ColumnElement[bool], target: _Target
    ) -> list[tuple[int, int]]:
        count, unit = self.interval
        calendar = unit in _CALENDAR_UNITS
        # Calendar units are built from days, which the database groups; fixed ones directly.
        step = _DAY if calendar else count * _FIXED_UNITS[unit]
        offset = _MONDAY if unit == "w" else 0
        column = target.scalar()
        floor = (column - sa.literal(offset, sa.BigInteger())) // sa.literal(step, sa.BigInteger())
        statement = self.select(floor.label("bucket"), scope=scope).where(column.is_not(None)).group_by(floor)
        starts = sorted({int(b) * step + offset for b in (await conn.scalars(statement)).all()})
        if not calendar:
            return [(s, s + step) for s in starts]
        return sorted({_calendar_bucket(s, unit) for s in starts})


@dataclass
class CategoryAggregation(Aggregation):
    """Named filters: {"<category>": {sub-aggregations}}."""

    model: SearchModel
    where: ColumnElement[bool]
    categories: list[tuple[str, ColumnElement[bool]]]
    select_: list[Aggregation]

    async def run(self, conn: AsyncConnection, scope: ColumnElement[bool]) -> dict[str, Any]:
        result = {}
        for name, condition in self.categories:
            result[name] = await _run_all(self.select_, conn, sa.and_(scope, self.where, condition))
        return result


def _bucket_name(value: Any) -> str:
    if isinstance(value, Decimal):
        value = float(value)
    return str(value)


_DAY = 86_400_000
_MONDAY = 4 * _DAY  # 1970-01-05, the first Monday: Elasticsearch weeks start on Mondays
_FIXED_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": _DAY, "w": 7 * _DAY}
_CALENDAR_UNITS = {"M": 1, "q": 3, "y": 12}  # in months
_NAMED_INTERVALS = {
    "second": "1s",
    "minute": "1m",
    "hour": "1h",
    "day": "1d",
    "week": "1w",
    "month": "1M",
    "quarter": "1q",
    "year": "1y",
}
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w|M|q|y)$")


def _parse_interval(value: Any) -> tuple[int, str]:
    text = _NAMED_INTERVALS.get(value, value) if isinstance(value, str) else None
    match = _INTERVAL.match(text.strip()) if text else None
    if match is None or int(match.group(1)) < 1:
        raise SearchError(f"Invalid _interval {value!r}: expected e.g. 1h, 1d, 1w or 1M")
    count, unit = int(match.group(1)), match.group(2)
    if unit in _CALENDAR_UNITS and count != 1:
        raise SearchError(f"Invalid _interval {value!r}: months, quarters and years only come one at a time")
    return count, unit


def _calendar_bucket(day_start: int, unit: str) -> tuple[int, int]:
    day = datetime.fromtimestamp(day_start / 1000, UTC)
    months = _CALENDAR_UNITS[unit]
    first_month = (day.month - 1) // months * months  # 0-based
    start = datetime(day.year, first_month + 1, 1, tzinfo=UTC)
    following = first_month + months
    end = datetime(day.year + following // 12, following % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def compile_stats(model: SearchModel, stats: Any) -> list[Aggregation]:
    """Validate and compile the `stats` list of a _stats request (SearchError when invalid)."""
    return [_aggregation(model, spec, 0) for spec in _require_list(stats, "stats")]


async def run_stats(
    conn: AsyncConnection,
    model: SearchModel,
    query: Any,
    stats: Any,
    *,
    where: ColumnElement[bool] | None = None,
) -> dict[str, Any]:
    """The answer of a _stats request: each aggregation's result merged into one object.

    `where` narrows the entities further (e.g. to the caller's organization).
    """
    aggregations = compile_stats(model, stats)
    scope = compile_query(model, query)
    if where is not None:
        scope = sa.and_(scope, where)
    return await _run_all(aggregations, conn, scope)


def _size(spec: dict[str, Any], default: int) -> int:
    size = spec.get("_size", default)
    if isinstance(size, str) and _INTEGER.match(size.strip()):
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise SearchError(f"Invalid _size {size!r}: expected a non-negative integer")
    return min(size, _MAX_ROWS)


def _bucket_order(value: Any) -> list[tuple[str, bool]]:
    order = []
    for item in _require_list(value, "_order"):
        if not isinstance(item, str) or not item.strip():
            raise SearchError(f"Invalid _order entry {item!r}")
        item = item.strip()
        descending = item.startswith("-")
        name = item[1:] if item[0] in "+-" else item
        if name not in ("_count", "_key", "_term"):
            raise SearchError(f"Invalid _order entry {item!r}: buckets sort by _count or _key")
        order.append(("count" if name == "_count" else "key", descending))
    return order


def _aggregation(model: SearchModel, spec: Any, depth: int) -> Aggregation:
    if depth > MAX_DEPTH:
        raise SearchError(f"Aggregations nested deeper than {MAX_DEPTH} levels")
    spec = _require_dict(spec, "aggregation", {"_agg"})
    kind = spec["_agg"]
    name = spec.get("_name")
    if name is not None and not isinstance(name, str):
        raise SearchError(f"Invalid _name {name!r}")
    where = compile_query(model, spec.get("_query"))

    def sub_aggregations() -> list[Aggregation]:
        return [_aggregation(model, s, depth + 1) for s in _require_list(spec.get("_select", []), "_select")]

    if kind == "count":
        return CountAggregation(model, where, name or "count")
    if kind in ("avg", "min", "max", "sum"):
        target = _resolve(model, spec.get("_field"))
        if target.kind not in _NUMERIC_KINDS:
            raise SearchError(f"Cannot compute {kind} of field {target.name!r}: it is not a number or date")
        return MetricAggregation(model, where, name or f"{kind}_{target.name}", kind, target)
    if kind == "top":
        order = order_by(model, _require_list(spec.get("_order", []), "_order"))
        return TopAggregation(model, where, name or "top", _size(spec, 10), order)
    if kind == "field":
        target = _resolve(model, spec.get("_field"))
        if target.kind not in _STRING_KINDS | _NUMERIC_KINDS:
            raise SearchError(f"Cannot group by field {target.name!r}: it is a {target.kind}")
        order = _bucket_order(spec.get("_order", ["-_count"]))
        return FieldAggregation(model, where, target, _size(spec, 10), order, sub_aggregations())
    if kind == "time":
        fields = _require_list(spec.get("_fields"), "_fields")
        targets = [_resolve(model, f) for f in fields]
        if not targets or any(t.kind != "date" or t.path for t in targets):
            raise SearchError("Invalid time aggregation: _fields must list date fields")
        interval = _parse_interval(spec.get("_interval"))
        return TimeAggregation(model, where, targets, interval, sub_aggregations())
    if kind == "category":
        categories = _require_dict(spec.get("_categories"), "_categories")
        compiled = [(str(n), compile_query(model, q)) for n, q in categories.items()]
        return CategoryAggregation(model, where, compiled, sub_aggregations())
    raise SearchError(f"Unknown aggregation {kind!r}")
