"""Parse ``POST /crm/v3/objects/{type}/search`` bodies into a plan the store runs.

Filters on the server-maintained columns (``hs_object_id``, ``createdate`` /
``hs_createdate``, ``hs_lastmodifieddate`` / ``lastmodifieddate``) are pushed
down into SQL on indexed columns; the other filters become Python predicates
over the stored properties. The request limits are HubSpot's: at most 5
filter groups, 10 filters per group and 25 filters in all (the spec's
description still says "up to 6 groups": HubSpot's changelog of 2024-08
raised the limits to 5/10/25, and we follow the vendor), ``limit`` at most 200,
and no paging past the 10,000th result.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sandbox.crm.errors import GENERIC_400, HubSpotError
from sandbox.crm.model import PropertyDef, parse_number, parse_time_ms

OPERATORS = ("BETWEEN", "CONTAINS_TOKEN", "EQ", "GT", "GTE", "HAS_PROPERTY", "IN", "LT", "LTE", "NEQ",
             "NOT_CONTAINS_TOKEN", "NOT_HAS_PROPERTY", "NOT_IN")
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25
MAX_LIMIT = 200
RESULT_CAP = 10_000

Row = tuple[int, int, int, int, int | None, bytes]  # id, created_ms, modified_ms, archived, archived_ms, props
Predicate = Callable[[Row, dict[str, str]], bool]


@dataclass
class ColumnFilter:
    column: str  # id | created_ms | modified_ms
    operator: str
    values: list[int]  # parsed operands (BETWEEN: [low, high]); empty for HAS/NOT_HAS


@dataclass
class Group:
    columns: list[ColumnFilter] = field(default_factory=list)
    residual: list[Predicate] = field(default_factory=list)


@dataclass
class SearchPlan:
    groups: list[Group]
    sort_column: str | None  # a column name, or None when sorting by a stored property
    sort_property: PropertyDef | None
    descending: bool
    properties: list[str] | None
    limit: int
    after: int
    query: str | None
    signature: bytes  # what identifies "the same query" for caches (no paging, no properties)

    @property
    def all_pushdown(self) -> bool:
        return self.query is None and all(not g.residual for g in self.groups)


def _bad(message: str = GENERIC_400, **kw: Any) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR", **kw)


def _int(raw: Any, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise _bad(errors=[{"message": f"{name} must be an integer", "in": name}])
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _bad(errors=[{"message": f"{name} must be an integer", "in": name}]) from None


_TOKEN = re.compile(r"[a-z0-9]+|[^\x00-\x7f]+")


def _tokens(text: str) -> list[str]:
    """Words as a search analyzer sees them: runs of ASCII letters/digits, and runs of other (CJK) text."""
    return _TOKEN.findall(text.lower())


def _cmp_key(p: PropertyDef, raw: str) -> Any:
    """A stored or filter value as HubSpot compares it for the property's type (None: no value)."""
    if raw == "":
        return None
    if p.type == "number":
        return parse_number(raw)
    if p.type in ("datetime", "date"):
        return parse_time_ms(raw)
    return raw.lower()


def _column_operand(p: PropertyDef, raw: Any, op: str) -> int:
    text = str(raw).strip() if raw is not None else ""
    value = (int(text) if text.isdigit() else None) if p.column == "id" else parse_time_ms(text)
    if value is None:
        raise _bad(f"{text!r} is not a valid value for the {p.type} property {p.name} (operator {op})",
                   context={"propertyName": [p.name]})
    return value


def _residual(p: PropertyDef, op: str, value: Any, values: list[Any], high: Any) -> Predicate:
    name = p.name
    if op == "HAS_PROPERTY":
        return lambda _row, props: props.get(name, "") != ""
    if op == "NOT_HAS_PROPERTY":
        return lambda _row, props: props.get(name, "") == ""
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        needle = str(value).lower()
        wildcard = "*" in needle

        def contains(_row: Row, props: dict[str, str]) -> bool:
            text = props.get(name, "")
            if not text:
                return False
            toks = _tokens(text)
            if wildcard:
                return any(fnmatch.fnmatchcase(t, needle) for t in toks)
            # CJK text has no spaces: a token is then any substring, as HubSpot's analyzer splits it finely.
            return needle in toks or (not needle.isascii() and needle in text.lower())

        if op == "CONTAINS_TOKEN":
            return contains
        return lambda row, props: not contains(row, props)
    if op in ("IN", "NOT_IN"):
        wanted = {_cmp_key(p, str(v)) for v in values} - {None}
        if op == "IN":
            return lambda _row, props: _cmp_key(p, props.get(name, "")) in wanted
        return lambda _row, props: _cmp_key(p, props.get(name, "")) not in wanted
    target = _cmp_key(p, str(value))
    if target is None and op != "NEQ":
        raise _bad(f"{value!r} is not a valid value for the {p.type} property {name} (operator {op})",
                   context={"propertyName": [name]})
    if op == "EQ":
        return lambda _row, props: _cmp_key(p, props.get(name, "")) == target
    if op == "NEQ":  # records without the property match NEQ, as on HubSpot (a must-not term)
        return lambda _row, props: _cmp_key(p, props.get(name, "")) != target
    if op == "BETWEEN":
        top = _cmp_key(p, str(high))
        if top is None:
            raise _bad(f"BETWEEN on {name} needs a valid highValue", context={"propertyName": [name]})

        def between(_row: Row, props: dict[str, str]) -> bool:
            v = _cmp_key(p, props.get(name, ""))
            return v is not None and target <= v <= top

        return between
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "LT": lambda a, b: a < b, "LTE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b,
    }
    fn = compare[op]

    def ordered(_row: Row, props: dict[str, str]) -> bool:
        v = _cmp_key(p, props.get(name, ""))
        return v is not None and fn(v, target)

    return ordered


def parse_search(body: Any, defs: dict[str, PropertyDef]) -> SearchPlan:
    if not isinstance(body, dict):
        raise _bad("Invalid input JSON: the search request must be an object")
    limit = _int(body.get("limit"), "limit", 10)
    if limit > MAX_LIMIT or limit < 0:
        raise _bad(errors=[{"message": f"limit must be between 0 and {MAX_LIMIT}", "in": "limit",
                            "code": "VALIDATION_ERROR"}])
    after = _int(body.get("after"), "after", 0)
    if after < 0:
        raise _bad(errors=[{"message": "after must not be negative", "in": "after"}])
    if after + limit > RESULT_CAP:
        # HubSpot: "The search endpoints are limited to 10,000 total results for any given query.
        # Attempting to page beyond 10,000 will result in a 400 error." Its body is the generic one.
        raise _bad()
    raw_groups = body.get("filterGroups") or []
    if not isinstance(raw_groups, list):
        raise _bad("Invalid input JSON: filterGroups must be an array")
    if len(raw_groups) > MAX_GROUPS:
        raise _bad(f"Too many filter groups: {len(raw_groups)}. The maximum is {MAX_GROUPS}.",
                   context={"maxFilterGroups": [str(MAX_GROUPS)]})
    n_filters = 0
    groups: list[Group] = []
    norm_groups: list[list[Any]] = []
    for raw_group in raw_groups:
        filters = raw_group.get("filters") if isinstance(raw_group, dict) else None
        if not isinstance(filters, list):
            raise _bad("Invalid input JSON: each filter group needs a filters array")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise _bad(f"Too many filters in a filter group: {len(filters)}. The maximum is {MAX_FILTERS_PER_GROUP}.",
                       context={"maxFiltersPerGroup": [str(MAX_FILTERS_PER_GROUP)]})
        n_filters += len(filters)
        group = Group()
        norm: list[Any] = []
        for f in filters:
            if not isinstance(f, dict):
                raise _bad("Invalid input JSON: a filter must be an object")
            op = f.get("operator")
            name = f.get("propertyName")
            if op not in OPERATORS:
                raise _bad(f"Invalid input JSON: Cannot deserialize value of type `FilterOperator` from String "
                           f"{orjson.dumps(op).decode()}: not one of the values accepted for Enum class: "
                           f"[{', '.join(OPERATORS)}]")
            if not isinstance(name, str) or not name:
                raise _bad("Invalid input JSON: Cannot build Filter, some of required attributes are not set "
                           "[propertyName]")
            p = defs.get(name)
            if p is None:
                raise _bad(f'Property "{name}" does not exist', context={"propertyName": [name]},
                           sub_category="PROPERTY_DOESNT_EXIST")
            value, values, high = f.get("value"), f.get("values"), f.get("highValue")
            if op in ("IN", "NOT_IN"):
                if not isinstance(values, list) or not values:
                    raise _bad(f"The {op} operator needs a non-empty values array (filter on {name})")
            elif op not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY") and value is None:
                raise _bad(f"The {op} operator needs a value (filter on {name})")
            if op == "BETWEEN" and high is None:
                raise _bad(f"The BETWEEN operator needs a highValue (filter on {name})")
            norm.append([name, op, value, values, high])
            if p.column:
                if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                    group.columns.append(ColumnFilter(p.column, op, []))
                elif op in ("IN", "NOT_IN"):
                    group.columns.append(ColumnFilter(p.column, op, [_column_operand(p, v, op) for v in values or []]))
                elif op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
                    group.residual.append(_column_token(p, op, value))
                else:
                    operands = [_column_operand(p, value, op)]
                    if op == "BETWEEN":
                        operands.append(_column_operand(p, high, op))
                    group.columns.append(ColumnFilter(p.column, op, operands))
            else:
                group.residual.append(_residual(p, op, value, values or [], high))
        groups.append(group)
        norm_groups.append(norm)
    if n_filters > MAX_FILTERS:
        raise _bad(f"Too many filters: {n_filters}. The maximum is {MAX_FILTERS}.",
                   context={"maxFilters": [str(MAX_FILTERS)]})
    # The spec types sorts as strings; HubSpot's documentation (and its clients) send
    # [{"propertyName", "direction"}]. Both are accepted; only the first sort is used.
    sorts = body.get("sorts") or []
    if not isinstance(sorts, list):
        raise _bad("Invalid input JSON: sorts must be an array")
    sort_name, descending = "hs_object_id", False
    if sorts:
        first = sorts[0]
        if isinstance(first, str):
            descending = first.startswith("-")
            sort_name = first.lstrip("-")
        elif isinstance(first, dict) and isinstance(first.get("propertyName"), str):
            sort_name = first["propertyName"]
            direction = str(first.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise _bad(f"Invalid input JSON: Cannot deserialize value of type `SortDirection` from String "
                           f"\"{direction}\": not one of the values accepted for Enum class: [ASCENDING, DESCENDING]")
            descending = direction == "DESCENDING"
        else:
            raise _bad("Invalid input JSON: a sort needs a propertyName")
    sort_def = defs.get(sort_name)
    if sort_def is None:
        raise _bad(f'Property "{sort_name}" does not exist', context={"propertyName": [sort_name]},
                   sub_category="PROPERTY_DOESNT_EXIST")
    props = body.get("properties")
    if props is not None and (not isinstance(props, list) or not all(isinstance(x, str) for x in props)):
        raise _bad("Invalid input JSON: properties must be an array of strings")
    query = body.get("query")
    if query is not None and not isinstance(query, str):
        raise _bad("Invalid input JSON: query must be a string")
    if query is not None and len(query) > 3000:
        raise _bad("query must be at most 3000 characters")
    query = query.strip().lower() if query and query.strip() else None
    signature = orjson.dumps([norm_groups, sort_name, descending, query])
    return SearchPlan(groups=groups, sort_column=sort_def.column, sort_property=None if sort_def.column else sort_def,
                      descending=descending, properties=props or None, limit=limit, after=after, query=query,
                      signature=signature)


def _column_token(p: PropertyDef, op: str, value: Any) -> Predicate:
    index = {"id": 0, "created_ms": 1, "modified_ms": 2}[p.column or "id"]
    needle = str(value)

    def has(row: Row, _props: dict[str, str]) -> bool:
        return needle == str(row[index])

    return has if op == "CONTAINS_TOKEN" else (lambda row, props: not has(row, props))


# ------------------------------------------------------------------ SQL for the pushed-down part

_SQL_OPS = {"EQ": " = ?", "NEQ": " != ?", "LT": " < ?", "LTE": " <= ?", "GT": " > ?", "GTE": " >= ?"}
_COLUMNS = {"id": "id", "created_ms": "created_ms", "modified_ms": "modified_ms"}


def column_sql(f: ColumnFilter) -> tuple[str, list[int]]:
    """SQL for one pushed-down filter. Column names come from a fixed table, never from the request."""
    col = _COLUMNS[f.column]
    if f.operator in _SQL_OPS:
        return col + _SQL_OPS[f.operator], list(f.values)
    if f.operator == "BETWEEN":
        return col + " BETWEEN ? AND ?", list(f.values)
    if f.operator in ("IN", "NOT_IN"):
        marks = ",".join("?" * len(f.values))
        return col + (" IN (" if f.operator == "IN" else " NOT IN (") + marks + ")", list(f.values)
    if f.operator == "HAS_PROPERTY":
        return "1", []
    return "0", []  # NOT_HAS_PROPERTY: server-maintained columns always have a value


def _bounds(group: Group, column: str) -> tuple[int | None, int | None]:
    """The tightest [low, high] a group puts on an integer column (None: unbounded)."""
    low: int | None = None
    high: int | None = None
    for f in group.columns:
        if f.column != column or not f.values:
            continue
        lo = hi = None
        if f.operator in ("EQ", "IN"):
            lo, hi = min(f.values), max(f.values)
        elif f.operator == "GT":
            lo = f.values[0] + 1
        elif f.operator == "GTE":
            lo = f.values[0]
        elif f.operator == "LT":
            hi = f.values[0] - 1
        elif f.operator == "LTE":
            hi = f.values[0]
        elif f.operator == "BETWEEN":
            lo, hi = f.values[0], f.values[1]
        if lo is not None:
            low = lo if low is None else max(low, lo)
        if hi is not None:
            high = hi if high is None else min(high, hi)
    return low, high


def envelope_sql(groups: list[Group]) -> tuple[list[str], list[int]]:
    """Range conditions implied by *every* group (``modified_ms >= min of the groups' lows`` ...).

    SQLite cannot seek into an index for ``(a AND b) OR (c AND d)``; it would scan the
    whole type from the start. The envelope, ANDed in front, gives it the range to seek to:
    a restart query ``(modified = T AND id > X) OR modified > T`` then costs what
    ``modified >= T`` costs.
    """
    conds: list[str] = []
    params: list[int] = []
    if not groups or any(not g.columns for g in groups):
        return conds, params
    for column in ("modified_ms", "created_ms", "id"):
        bounds = [_bounds(g, column) for g in groups]
        lows = [lo for lo, _ in bounds]
        highs = [hi for _, hi in bounds]
        if all(lo is not None for lo in lows):
            conds.append(_COLUMNS[column] + " >= ?")
            params.append(min(lo for lo in lows if lo is not None))
        if all(hi is not None for hi in highs):
            conds.append(_COLUMNS[column] + " <= ?")
            params.append(max(hi for hi in highs if hi is not None))
    return conds, params


def groups_sql(groups: list[Group]) -> tuple[str, list[int]]:
    """``range envelope AND ((a AND b) OR (c))`` over the pushed-down filters; ``1`` when a group has none."""
    if not groups:
        return "1", []
    parts: list[str] = []
    params: list[int] = []
    for g in groups:
        if not g.columns:
            return "1", []
        sub = []
        for f in g.columns:
            s, p = column_sql(f)
            sub.append(s)
            params.extend(p)
        parts.append("(" + " AND ".join(sub) + ")")
    env, env_params = envelope_sql(groups)
    return " AND ".join([*env, "(" + " OR ".join(parts) + ")"]), [*env_params, *params]


def column_match(f: ColumnFilter, row: Row) -> bool:
    v = int(row[{"id": 0, "created_ms": 1, "modified_ms": 2}[f.column]] or 0)
    op, vals = f.operator, f.values
    if op == "EQ":
        return v == vals[0]
    if op == "NEQ":
        return v != vals[0]
    if op == "LT":
        return v < vals[0]
    if op == "LTE":
        return v <= vals[0]
    if op == "GT":
        return v > vals[0]
    if op == "GTE":
        return v >= vals[0]
    if op == "BETWEEN":
        return vals[0] <= v <= vals[1]
    if op == "IN":
        return v in vals
    if op == "NOT_IN":
        return v not in vals
    return op == "HAS_PROPERTY"
