"""Staging's results do not change with its speed: content hashes, stored payloads, problems and
quarantine decisions over a varied corpus (tests/sync/staging_corpus.py) equal the golden values
written by the code before the compiled mapper (commit f9b4b37). A changed content hash would make
every deal look changed and re-send 立项申请."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Connection, Text, cast, select
from tests.hub_support import migrated_sqlite_hub
from tests.pg_support import scratch_database
from tests.sync import staging_corpus as corpus

import bridge.dictionary
from bridge import staging
from bridge.dictionary import Dictionary, formats
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.engine import _json_dumps
from bridge.hub.schema import snapshot
from bridge.hub.store import SnapshotRow
from sandbox.common.world import wire_properties


@pytest.fixture(scope="module")
def d() -> Dictionary:
    return bridge.dictionary.load()


@pytest.fixture(scope="module")
def items() -> list[corpus.Item]:
    return corpus.corpus()


@pytest.fixture(scope="module")
def golden() -> list[list[object]]:
    return json.loads(corpus.GOLDEN.read_text())


def test_the_corpus_is_varied(golden: list[list[object]]) -> None:
    codes = {c for entry in golden for c in entry[1]}
    assert codes >= {"missing_required", "invalid_format", "unmapped_value", "hostile_input"}
    assert sum(1 for e in golden if e[2]) > 100  # deals the extract quarantines
    assert sum(1 for e in golden if e[2] is False) > 500  # and deals it queues
    assert sum(1 for e in golden if e[3] is None) > 10  # objects without an id: no snapshot row


def test_staging_outcomes_equal_the_golden_values(d: Dictionary, items: list[corpus.Item],
                                                   golden: list[list[object]]) -> None:
    assert len(items) == len(golden)
    for (entity, obj, assoc), expected in zip(items, golden, strict=True):
        assert corpus.outcome(d, entity, obj, assoc) == expected, (entity, obj)


def test_the_one_pass_stager_gives_the_golden_outcomes(d: Dictionary, items: list[corpus.Item],
                                                       golden: list[list[object]]) -> None:
    """The compiled stager the extract uses (bridge.staging.crm_stager) over the same corpus."""
    for (entity, obj, assoc), expected in zip(items, golden, strict=True):
        row, result = staging.crm_stager(d, entity).stage(obj, assoc)
        assert corpus.describe(d, entity, result, row) == expected, (entity, obj)


def test_the_stager_equals_the_dictionary_path_record_for_record(d: Dictionary, items: list[corpus.Item]) -> None:
    """Not only the digests: the same records, problems, rows and stored payload text."""
    for entity, obj, assoc in items:
        row, result = staging.crm_stager(d, entity).stage(obj, assoc)
        old = d.from_crm(entity, obj, assoc if d.entity(entity).associations else None)
        assert (result.record, result.problems) == (old.record, old.problems)
        old_row = staging.snapshot_row(d, entity, old)
        assert row == old_row
        if row is not None and old_row is not None:
            assert _json_dumps(row.payload) == _json_dumps(old_row.payload)
            assert row.content_hash == _reference_hash(d, entity, old.record)


def test_clean_records_take_the_one_pass_path(d: Dictionary, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeded deals without defects never reach Dictionary.from_crm (the slow path is for problems)."""
    world = corpus.seeded(200)
    clean = [(deal, corpus._envelope(deal.id, wire_properties(deal), deal.created_ms, deal.modified_ms))
             for deal in world.iter_deals() if "_defect" not in deal.properties]
    calls: list[object] = []
    monkeypatch.setattr(d, "from_crm", lambda *args: calls.append(args))
    stager = staging.CrmStager(d, "deal")  # a fresh one: no memo from earlier tests
    rows = [stager.stage(obj, deal.associations)[0] for deal, obj in clean]
    assert len(clean) > 100
    assert calls == []
    assert all(row is not None and row.source_id == deal.id for row, (deal, _) in zip(rows, clean, strict=True))


def _reference_hash(d: Dictionary, entity: str, record: dict[str, object]) -> str:
    """Dictionary.content_hash as written before issue 17 (json.dumps), kept here to compare against."""
    payload = {name: record.get(name) for name in d.hash_fields(entity)}
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_fast_hash_text_is_json_dumps_text_for_every_value(d: Dictionary) -> None:
    """orjson's text equals json.dumps(ensure_ascii=False)'s for every code point and plain value; other
    values (floats, Decimals, dates, big ints, lone surrogates) are left to the dictionary's hash."""
    every_char = "".join(chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    fields = d.hash_fields("deal")
    plain: list[object] = [every_char, "", 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, True, False, None, "\u2028\x7f\x00"]
    for value in plain:
        record = dict.fromkeys(fields, value)
        assert staging.hash_of(fields, record) == _reference_hash(d, "deal", record), repr(value)[:40]
    others: list[object] = [1.5, 1e16, float("nan"), Decimal("1.50"), date(2026, 11, 26),
                            datetime(2026, 11, 26, tzinfo=UTC), 2**64, "\ud800", ["a"], {"k": 1}]
    for value in others:
        record = dict.fromkeys(fields, value)
        assert staging.hash_of(fields, record) is None, repr(value)
    for value in others[:-3]:  # the ones json.dumps can encode: the staging hash is still the dictionary's
        record = dict.fromkeys(fields, value)
        assert staging.content_hash(d, "deal", record) == _reference_hash(d, "deal", record)


# ---------------------------------------------------------------- what the hub stores


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{migrated_sqlite_hub(tmp_path / 'hub.sqlite')}"
        return
    with scratch_database(request.getfixturevalue("pg_dsn"), "staging_identity") as url:
        hub_engine.upgrade(url)
        yield url


def _reference_write(conn: Connection, entity: str, rows: list[SnapshotRow], at: datetime) -> None:
    """store._write_snapshots as written before issue 17 (SQLAlchemy's own parameter processing)."""
    values = [{"system": "crm", "entity": entity, "source_id": r.source_id, "content_hash": r.content_hash,
               "payload": r.payload, "source_modified_ms": r.source_modified_ms, "data_owner": r.data_owner,
               "first_seen_at": at, "last_seen_at": at, "archived": False, "deleted": False}
              for r in store._latest_per_id(rows)]
    multi_row = conn.dialect.name == "postgresql"
    stmt = store._insert(conn, snapshot)
    if multi_row:
        stmt = stmt.values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[snapshot.c.system, snapshot.c.entity, snapshot.c.source_id],
        set_={**{n: stmt.excluded[n] for n in ("content_hash", "payload", "source_modified_ms", "data_owner",
                                               "last_seen_at")}, "deleted": False},
        where=stmt.excluded.source_modified_ms >= snapshot.c.source_modified_ms)
    conn.execute(stmt) if multi_row else conn.execute(stmt, values)


def _stored(conn: Connection, entity: str) -> list[tuple[object, ...]]:
    """Every column of the entity's snapshots as the database holds it (the payload's text)."""
    columns = [cast(c, Text) if c.name in ("payload", "first_seen_at", "last_seen_at") else c
               for c in snapshot.c if c.name != "entity"]
    return [tuple(r) for r in conn.execute(select(*columns).where(snapshot.c.entity == entity)
                                           .order_by(snapshot.c.source_id))]


def test_the_hub_stores_what_sqlalchemy_stored(d: Dictionary, items: list[corpus.Item], hub_url: str) -> None:
    """store.upsert_snapshots (compiled once, driver executemany / multi-row VALUES) stores the same bytes
    as SQLAlchemy's own processing did: a first load, then newer, equal and stale versions."""
    rows = [r for e, obj, assoc in items if e == "deal" and (r := staging.crm_stager(d, e).stage(obj, assoc)[0])]
    later = [replace(r, source_modified_ms=r.source_modified_ms + (k % 3 - 1),  # newer, equal, stale
                     payload={**r.payload, "deal_name": f"改{k}"}, content_hash=f"{k:064d}")
             for k, r in enumerate(rows[::2])]
    first, second = datetime(2026, 12, 7, 8, tzinfo=UTC), datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    engine = hub_engine.get_engine(hub_url)
    for batch, at in ((rows, first), (later, second)):
        with engine.begin() as conn:
            store.upsert_snapshots(conn, "crm", "deal", batch, now=at)
            _reference_write(conn, "deal_reference", batch, at)
    with engine.connect() as conn:
        staged, reference = _stored(conn, "deal"), _stored(conn, "deal_reference")
    assert len(staged) == len({r.source_id for r in rows}) > 500
    assert staged == reference
    assert sum(1 for s in staged if str(s[3]).find("改") > 0) > 100  # the second version was written


def test_amounts_taken_as_they_are_are_what_clean_amount_returns() -> None:
    """The stager's shortcut for canonical-looking amounts changes nothing clean_amount would say."""
    rng = random.Random(17)
    spellings = [f"{rng.randrange(10 ** rng.randrange(1, 14))}.{rng.randrange(100):02d}" for _ in range(20_000)]
    spellings += ["0.00", "0.05", "00.00", "01.50", "999999999999.99", "1000000000000.00", "1e3.00", "1.5",
                  "1.500", "-1.00", "+1.00", " 1.00", "1.00 ", "１.００", "1,000.00", "٣.٠٠", "1.0\n"]
    shortcut = staging._ALREADY_CANONICAL[formats.clean_amount]
    taken = [s for s in spellings if shortcut.fullmatch(s)]
    assert len(taken) > 15_000
    assert not {"1000000000000.00", "٣.٠٠", "00.00", "１.００", "1.0\n"} & set(taken)
    for value in taken:
        assert formats.clean_amount(value) == (value, None), value
