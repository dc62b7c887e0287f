"""A varied corpus of CRM objects for the staging identity test, and what the staging path made of it.

The corpus is the CRM simulator's seeded companies, contacts and deals (``sandbox.common.world``, a
fixed seed and clock, 20 % dirty) plus deterministic variants of them: nulls, missing properties,
unicode (CJK, emoji, quotes, backslashes, control characters, U+2028, full-width digits), numbers as
strings in every spelling the cleaners meet, dates in every accepted and some refused form, value-map
misses, non-string JSON values, a missing id, a properties block that is not an object, and
associations absent, empty, several or malformed.

``outcome`` says what staging made of one object: the snapshot row's content hash and the SHA-256 of
the payload text the hub stores, the modification time and owner, the mapping problems (with their
Chinese messages) and whether the CRM → OA extract would quarantine the deal.

``python -m tests.sync.staging_corpus`` rewrites ``staging_identity_golden.json``: it was written
from the code of commit f9b4b37, before the compiled mapper. Rewriting it would make the identity
test pass whatever the hashes are; a changed content hash makes every deal look changed and re-sends
立项申请 at a real company, so rewrite it only when the hash is meant to change.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bridge.dictionary import Dictionary
from bridge.hub.engine import _json_dumps
from bridge.staging import snapshot_row
from bridge.sync.crm_to_oa import decide as rules
from bridge.sync.frame import blocking_problems
from sandbox.common.world import World, wire_properties

GOLDEN = Path(__file__).with_name("staging_identity_golden.json")
NOW_MS = 1_796_000_000_000  # 2026-11-30, fixed so the seeded dates never move

Item = tuple[str, Any, dict[str, list[str]] | None]  # entity, the object as the CRM sent it, associations

_TEXTS = [
    "华东精密仪器（上海）有限公司",
    "Müller & Søn 🚀 项目",
    'quote " and \\ backslash',
    "tab\tnew\nline\r\x01\x1f\x7f",
    "line\u2028sep\u2029para",
    "  padded  ",
    "",
    "   ",
    "１２３ＡＢＣ　全角",
    "nul\x00inside",
    "x" * 17_000,
    "\U0010fffd private use",
]
_AMOUNTS = ["1234.5", "1,234.56", "¥1 000", "RMB 88", "100元", "１２３４", "1e3", "0.005", "0.015", "-5", "abc",
            "NaN", "Infinity", "9999999999999", "1000000000000", "", "  ", "12.345678", "0", "007"]
_DATES = ["2026-11-26T10:25:01.123Z", "2026-11-26", "2026/11/26", "2026年11月26日", "20261126", "1764124800000",
          "2026-11-26T10:25:00+08:00", "2026-11-26 10:25", "garbage", "1899-01-01", "2300-01-01T00:00:00.000Z",
          "0", "176412480000000", "2026-02-30", "２０２６-１１-２６"]
_STAGES = ["appointmentscheduled", "contractsent", "closedwon", "closedlost", "legacy_stage_7", " closedwon ", ""]
_ODD_VALUES: list[Any] = [5, 12.5, True, ["a"], {"k": "v"}, None]


def seeded(deals: int, companies: int = 40) -> World:
    return World(seed=20261207, companies=companies, contacts_per_company=2, deals=deals, oa_instances=0,
                 dirty_share=0.2, now_ms=NOW_MS)


def _envelope(obj_id: str, props: dict[str, Any], created: int, modified: int) -> dict[str, Any]:
    """A search result as HubSpot sends it (ids and times also at the top level)."""
    return {"id": obj_id, "properties": {**props, "hs_object_id": obj_id}, "createdAt": _iso(created),
            "updatedAt": _iso(modified), "archived": False}


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _variants(rng: random.Random, props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Deterministic edits of one deal's properties, each touching one or two properties."""
    names = sorted(props)
    yield {**props, rng.choice(names): None}
    yield {k: v for k, v in props.items() if k != rng.choice(names)}
    yield {**props, "dealname": rng.choice(_TEXTS), "description": rng.choice(_TEXTS)}
    yield {**props, "amount": rng.choice(_AMOUNTS)}
    yield {**props, "closedate": rng.choice(_DATES), "createdate": rng.choice(_DATES)}
    yield {**props, "hs_lastmodifieddate": rng.choice(_DATES)}
    yield {**props, "dealstage": rng.choice(_STAGES), "oa_approval_status": rng.choice(["APPROVED", "weird", ""])}
    yield {**props, rng.choice(names): rng.choice(_ODD_VALUES)}
    yield {**props, "hubspot_owner_id": rng.choice(["", "  ", "42", "老王", None])}


def _associations(rng: random.Random, company_ids: list[str]) -> dict[str, list[str]] | None:
    pick = rng.random()
    if pick < 0.7:
        return {"companies": company_ids}
    if pick < 0.8:
        return {}
    if pick < 0.9:
        return {"companies": [*company_ids, "777"]}
    return {"companies": []}


def corpus(deals: int = 600) -> list[Item]:
    """Every object of the corpus with the associations the extract would read for it."""
    world = seeded(deals)
    rng = random.Random(20261207)
    items: list[Item] = []
    for c in world.iter_companies():
        items.append(("company", _envelope(c.id, wire_properties(c), c.created_ms, c.modified_ms), None))
    for p in world.iter_contacts():
        assoc = {"companies": p.associations.get("companies", [])}
        items.append(("contact", _envelope(p.id, wire_properties(p), p.created_ms, p.modified_ms), assoc))
    for i, deal in enumerate(world.iter_deals()):
        props = wire_properties(deal)
        companies = deal.associations.get("companies", [])
        items.append(("deal", _envelope(deal.id, props, deal.created_ms, deal.modified_ms), {"companies": companies}))
        if i % 3 == 0:
            for k, variant in enumerate(_variants(rng, props)):
                vid = str(int(deal.id) * 10 + k) if k != 8 or i % 2 else ""
                obj = _envelope(vid, variant, deal.created_ms, deal.modified_ms)
                items.append(("deal", obj, _associations(rng, companies)))
    items.extend(_hostile(world))
    return items


def _hostile(world: World) -> list[Item]:
    """Objects no CRM should send: the mapping must neither raise nor differ."""
    deal = next(iter(world.iter_deals()))
    props = wire_properties(deal)
    base = _envelope(deal.id, props, deal.created_ms, deal.modified_ms)
    no_id = {k: v for k, v in base.items() if k != "id"}
    return [
        ("deal", {**base, "properties": "not an object"}, {"companies": ["1"]}),
        ("deal", {**base, "properties": None}, None),
        ("deal", ["not", "a", "mapping"], None),
        ("deal", None, None),
        ("deal", {**no_id, "properties": {k: v for k, v in props.items()}}, None),
        ("deal", no_id, {"companies": ["9"]}),
        ("deal", {**base, "associations": {"companies": {"results": [{"id": "55"}, {"id": 56}]}}}, None),
        ("deal", {**base, "associations": {"companies": {"results": "x"}}}, None),
        ("deal", base, {"companies": "123"}),
        ("deal", base, {"companies": [1, True, None, "8"]}),
        ("company", {**base, "properties": {"name": "甲", "uscc": "91310000MA1FL8TQ2X", "lifecyclestage": "customer",
                                            "hs_lastmodifieddate": "2026-11-26T10:25:01.123Z"}}, None),
    ]


Mapper = Callable[[Dictionary, str, Any, Any], Any]  # (d, entity, obj, associations) → MappingResult


def outcome(d: Dictionary, entity: str, obj: Any, associations: Any) -> list[Any]:
    """What the staging path makes of one object (the shape of the golden file's entries)."""
    result = d.from_crm(entity, obj, associations if d.entity(entity).associations else None)
    return describe(d, entity, result, snapshot_row(d, entity, result))


def describe(d: Dictionary, entity: str, result: Any, row: Any) -> list[Any]:
    """An outcome from a mapping result and the snapshot row made of it: the SHA-256 (64 bits of it) of
    the record and problems, the problem codes, the quarantine decision (deals), then the row's id,
    content hash, payload text's SHA-256 (64 bits), modification time and owner (None without a row)."""
    needed = rules.needed_deal_fields(d)
    problems = [[p.code, p.field, p.message, p.department, p.value] for p in result.problems]
    mapped = json.dumps([result.record, problems], ensure_ascii=False, sort_keys=True, default=repr)
    out: list[Any] = [
        hashlib.sha256(mapped.encode("utf-8", "surrogatepass")).hexdigest()[:16],
        [p.code for p in result.problems],
        bool(blocking_problems(result.problems, needed)) if entity == "deal" else None,
    ]
    if row is None:
        return [*out, None, None, None, None, None]
    payload_text = _json_dumps(row.payload).encode()
    return [*out, row.source_id, row.content_hash, hashlib.sha256(payload_text).hexdigest()[:16],
            row.source_modified_ms, row.data_owner]


def write_golden() -> None:
    import bridge.dictionary

    d = bridge.dictionary.load()
    entries = [outcome(d, entity, obj, assoc) for entity, obj, assoc in corpus()]
    lines = ",\n".join(json.dumps(e, ensure_ascii=False) for e in entries)
    GOLDEN.write_text(f"[\n{lines}\n]\n")
    print(f"{GOLDEN}: {len(entries)} outcomes")


if __name__ == "__main__":
    write_golden()
