"""Search: every operator against an independent oracle, paging, sort ties, limits and the 10,000 cap."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sandbox.conftest_crm import NOW_MS, Crm, crm  # noqa: F401

NUMBER = {"amount"}
DATETIME = {"closedate", "hs_lastmodifieddate", "createdate"}


def _ms(value: str) -> int:
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def _key(name: str, raw: str | None) -> Any:
    """How the oracle compares a value of this property (None: no value)."""
    if raw in (None, ""):
        return None
    if name == "hs_object_id":
        return int(raw)
    if name in NUMBER:
        return float(raw)
    if name in DATETIME:
        return _ms(raw)
    return raw.lower()


def oracle(records: list[dict[str, Any]], f: dict[str, Any]) -> set[str]:
    """The ids a single filter should match, computed from the admin dump."""
    name, op = f["propertyName"], f["operator"]
    out = set()
    for rec in records:
        raw = rec["properties"].get(name)
        v = _key(name, raw)
        if op == "HAS_PROPERTY":
            hit = v is not None
        elif op == "NOT_HAS_PROPERTY":
            hit = v is None
        elif op in ("IN", "NOT_IN"):
            wanted = {_key(name, x) for x in f["values"]}
            hit = (v in wanted) == (op == "IN")
        elif op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            text = (raw or "").lower()
            needle = f["value"].lower()
            words = re.findall(r"[a-z0-9]+|[^\x00-\x7f]+", text)
            found = bool(text) and (needle in words or (not needle.isascii() and needle in text))
            hit = found == (op == "CONTAINS_TOKEN")
        else:
            target = _key(name, f["value"])
            if op == "NEQ":
                hit = v != target
            elif v is None:
                hit = False
            elif op == "EQ":
                hit = v == target
            elif op == "LT":
                hit = v < target
            elif op == "LTE":
                hit = v <= target
            elif op == "GT":
                hit = v > target
            elif op == "GTE":
                hit = v >= target
            else:  # BETWEEN
                hit = target <= v <= _key(name, f["highValue"])
        if hit:
            out.add(rec["id"])
    return out


def search_all(crm: Crm, object_type: str, body: dict[str, Any]) -> tuple[list[str], int]:  # noqa: F811
    ids: list[str] = []
    total = -1
    after = None
    while True:
        page_body = dict(body, limit=body.get("limit", 200))
        if after is not None:
            page_body["after"] = after
        resp = crm.search(object_type, page_body)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        total = page["total"]
        ids.extend(r["id"] for r in page["results"])
        after = page.get("paging", {}).get("next", {}).get("after")
        if after is None:
            return ids, total


@pytest.fixture(scope="module")
def deals(crm: Crm) -> list[dict[str, Any]]:  # noqa: F811
    crm.reset()
    return crm.dump("deals")


PROPS = ["amount", "dealstage", "closedate", "hs_lastmodifieddate", "hs_object_id", "createdate", "dealname",
         "oa_project_no"]
OPS = ["EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
       "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"]


@st.composite
def filters(draw: st.DrawFn, records: list[dict[str, Any]]) -> dict[str, Any]:
    name = draw(st.sampled_from(PROPS))
    op = draw(st.sampled_from(OPS))
    present = [r["properties"][name] for r in records if r["properties"].get(name)] or ["x"]
    f: dict[str, Any] = {"propertyName": name, "operator": op}
    if op in ("IN", "NOT_IN"):
        f["values"] = draw(st.lists(st.sampled_from(present), min_size=1, max_size=4))
    elif op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        word = draw(st.sampled_from(present))
        start = draw(st.integers(0, max(0, len(word) - 2)))
        f["value"] = word[start:start + 2] if name == "dealname" else word
    elif op not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        a, b = draw(st.sampled_from(present)), draw(st.sampled_from(present))
        if name in DATETIME and draw(st.booleans()):
            a, b = str(_ms(a)), str(_ms(b))  # epoch-ms strings are accepted as well as ISO
        if op == "BETWEEN":
            lo, hi = sorted((a, b), key=lambda x: _key(name, x))
            f["value"], f["highValue"] = lo, hi
        else:
            f["value"] = a
    return f


def test_every_operator_matches_the_oracle(crm: Crm, deals: list[dict[str, Any]]) -> None:  # noqa: F811
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(filters(deals), min_size=1, max_size=2), st.booleans())
    def check(fs: list[dict[str, Any]], two_groups: bool) -> None:
        if two_groups and len(fs) == 2:
            groups = [{"filters": [fs[0]]}, {"filters": [fs[1]]}]
            expected = oracle(deals, fs[0]) | oracle(deals, fs[1])
        else:
            groups = [{"filters": fs}]
            expected = set.intersection(*(oracle(deals, f) for f in fs))
        ids, total = search_all(crm, "deals", {"filterGroups": groups, "properties": ["dealname"]})
        assert len(ids) == len(set(ids))
        assert set(ids) == expected, (groups, len(ids), len(expected))
        assert total == len(expected)

    check()


def _sweep_filter(records: list[dict[str, Any]], name: str, op: str) -> dict[str, Any]:
    """A deterministic filter for (property, operator): operands taken from the middle of the data."""
    present = sorted({r["properties"][name] for r in records if r["properties"].get(name)},
                     key=lambda x: _key(name, x)) or ["x"]
    mid, low, high = present[len(present) // 2], present[len(present) // 4], present[3 * len(present) // 4]
    f: dict[str, Any] = {"propertyName": name, "operator": op}
    if op in ("IN", "NOT_IN"):
        f["values"] = [low, mid, high]
    elif op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        f["value"] = mid[2:4] if name == "dealname" else mid
    elif op == "BETWEEN":
        f["value"], f["highValue"] = low, high
    elif op not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        f["value"] = mid
    return f


def test_every_property_operator_pair_matches_the_oracle(crm: Crm, deals: list[dict[str, Any]]) -> None:  # noqa: F811
    for name in PROPS:
        for op in OPS:
            f = _sweep_filter(deals, name, op)
            ids, total = search_all(crm, "deals", {"filterGroups": [{"filters": [f]}], "properties": ["amount"]})
            expected = oracle(deals, f)
            assert set(ids) == expected, (f, len(ids), len(expected))
            assert total == len(expected) == len(ids)


def test_sorting_by_a_property_descending(crm: Crm, deals: list[dict[str, Any]]) -> None:  # noqa: F811
    ids, _ = search_all(crm, "deals", {"sorts": [{"propertyName": "amount", "direction": "DESCENDING"}]})
    amounts = {d["id"]: d["properties"].get("amount") for d in deals}
    valued = [float(amounts[i]) for i in ids if amounts[i]]
    assert valued == sorted(valued, reverse=True)
    assert all(not amounts[i] for i in ids[len(valued):])  # records without a value come last


def test_datetime_filters_take_iso_and_epoch_ms(crm: Crm, deals: list[dict[str, Any]]) -> None:  # noqa: F811
    cut = sorted(_ms(d["properties"]["hs_lastmodifieddate"]) for d in deals)[len(deals) // 2]
    iso = datetime.fromtimestamp(cut / 1000, tz=UTC).isoformat()
    by_ms, _ = search_all(crm, "deals", {"filterGroups": [{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(cut)}]}]})
    by_iso, _ = search_all(crm, "deals", {"filterGroups": [{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": iso}]}]})
    assert set(by_ms) == set(by_iso)
    assert len(by_ms) == sum(1 for d in deals if _ms(d["properties"]["hs_lastmodifieddate"]) >= cut)


def test_ties_in_the_sort_key_are_ordered_by_id_and_paging_is_stable(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/clock", {"freeze_ms": NOW_MS + 5_000})
    try:
        inputs = [{"properties": {"hs_timestamp": "2026-11-01T00:00:00Z", "hs_note_body": f"n{n}"}}
                  for n in range(60)]
        created = crm.ok("POST", "/crm/v3/objects/notes/batch/create", {"inputs": inputs}, status=201)
    finally:
        crm.admin("POST", "/clock", {"freeze_ms": None})
    made = sorted((r["id"] for r in created["results"]), key=int)
    stamps = {r["properties"]["hs_lastmodifieddate"] for r in created["results"]}
    assert len(stamps) == 1  # every note has the same hs_lastmodifieddate
    for direction, expected in (("ASCENDING", made), ("DESCENDING", made[::-1])):
        ids, total = search_all(crm, "notes", {
            "limit": 7, "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": direction}],
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "EQ",
                                           "value": str(NOW_MS + 5_000)}]}]})
        assert ids == expected
        assert total == 60


def test_query_searches_default_text_properties(crm: Crm, deals: list[dict[str, Any]]) -> None:  # noqa: F811
    word = deals[3]["properties"]["dealname"][2:6]
    ids, _ = search_all(crm, "deals", {"query": word})
    assert set(ids) == {d["id"] for d in deals if word.lower() in d["properties"]["dealname"].lower()}


def test_search_answers_only_requested_properties_and_skips_archived(crm: Crm, deals: list[dict[str, Any]]) -> None:  # noqa: F811
    victim = deals[10]["id"]
    page = crm.search("deals", {"properties": ["dealstage", "oa_project_no"], "limit": 200}).json()
    assert set(page["results"][0]["properties"]) == {"dealstage", "oa_project_no"}
    crm.admin("POST", "/act/archive", {"object_type": "deals", "id": victim})
    try:
        ids, total = search_all(crm, "deals", {})
        assert victim not in ids
        assert total == len(deals) - 1
    finally:
        crm.reset()


@pytest.mark.parametrize(("body", "fragment"), [
    ({"limit": 201}, "limit"),
    ({"limit": -1}, "limit"),
    ({"after": "abc"}, "after"),
    ({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "LIKE", "value": "1"}]}]},
     "FilterOperator"),
    ({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]},
     "does not exist"),
    ({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "EQ"}]}]}, "needs a value"),
    ({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "IN", "values": []}]}]}, "values"),
    ({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "BETWEEN", "value": "1"}]}]},
     "highValue"),
    ({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GT", "value": "soon"}]}]},
     "not a valid value"),
    ({"filterGroups": [{"filters": []}] * 6}, "filter groups"),
    ({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "HAS_PROPERTY"}] * 11}]}, "filters"),
    ({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "HAS_PROPERTY"}] * 6}] * 5},
     "Too many filters"),
    ({"sorts": [{"propertyName": "amount", "direction": "UP"}]}, "SortDirection"),
])
def test_requests_hubspot_refuses_are_refused(crm: Crm, body: dict[str, Any], fragment: str) -> None:  # noqa: F811
    resp = crm.search("deals", body)
    assert resp.status_code == 400
    err = resp.json()
    assert err["status"] == "error"
    assert err["category"] == "VALIDATION_ERROR"
    assert fragment in resp.text


def test_the_10000_result_cap(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/seed", {"seed": 3, "companies": 50, "contacts_per_company": 0, "deals": 10_400,
                                "now_ms": NOW_MS})
    try:
        sort = [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
        first = crm.search("deals", {"limit": 200, "sorts": sort}).json()
        assert first["total"] == 10_400
        last_ok = crm.search("deals", {"limit": 200, "after": "9800", "sorts": sort})
        assert last_ok.status_code == 200
        assert len(last_ok.json()["results"]) == 200
        assert last_ok.json()["paging"]["next"]["after"] == "10000"  # handed out, then refused
        for after, limit in (("10000", 200), ("9900", 200), ("10000", 1)):
            resp = crm.search("deals", {"limit": limit, "after": after, "sorts": sort})
            assert resp.status_code == 400, (after, limit)
            assert resp.json()["category"] == "VALIDATION_ERROR"
        # keyset-cached pages and OFFSET pages agree
        walked: list[str] = []
        after = None
        for _ in range(50):
            body: dict[str, Any] = {"limit": 200, "sorts": sort}
            if after:
                body["after"] = after
            page = crm.search("deals", body).json()
            walked.extend(r["id"] for r in page["results"])
            after = page["paging"]["next"]["after"]
        # pages overlapping the previous one by a record (the bridge's CrmHook) resume by keyset too
        overlapped: list[str] = []
        offset = 0
        for _ in range(10):
            body = {"limit": 200, "sorts": sort, **({"after": str(offset - 1)} if offset else {})}
            ids = [r["id"] for r in crm.search("deals", body).json()["results"]]
            if offset:
                assert ids[0] == overlapped[-1]
                ids = ids[1:]
            overlapped.extend(ids)
            offset += len(ids)
        assert overlapped == walked[:len(overlapped)]
        # an equivalent query (another signature, so no cached keyset) pages by OFFSET
        same = [{"filters": [{"propertyName": "hs_object_id", "operator": "HAS_PROPERTY"}]}]
        direct = crm.search("deals", {"limit": 200, "after": "9600", "sorts": sort, "filterGroups": same}).json()
        assert [r["id"] for r in direct["results"]] == walked[9600:9800]
        assert len(set(walked)) == 10_000
    finally:
        crm.reset()
