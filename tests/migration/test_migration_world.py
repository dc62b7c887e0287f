"""A dirty demo world through the whole migration: defects found, gate, dry run, rerun, resume, archive, lease.

The world (``sandbox.common.world.World``, 30 % dirty) is seeded into both
simulators; ``World.defects()`` says what was injected, so every assertion is
about records the test can name.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.hub_support import hub_copy

from bridge.hooks.crm import CrmHook
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import merge_record, migration_chunk, migration_run, quarantine, snapshot, xref
from bridge.migration import chunk, runs, steps, tasks
from bridge.migration.params import CONFIRM_TEXT, SHANGHAI, ParamsError
from sandbox.common.world import COMPANY_ID_BASE

WORLD = {"seed": 11, "companies": 60, "deals": 150, "oa_instances": 160, "dirty_share": 0.3}
SMALL = {"seed": 12, "companies": 30, "deals": 60, "oa_instances": 70, "dirty_share": 0.3}
REAL_LOAD = {"dry_run": False, "confirm_load": CONFIRM_TEXT}  # the form's default is a dry run


def _state(hub: Any) -> dict[str, set[tuple[Any, ...]]]:
    """What a migration leaves in the hub, comparable between two hubs."""
    with hub.connect() as conn:
        return {
            "snapshots": {
                (r.entity, r.source_id, r.content_hash, r.archived)
                for r in conn.execute(
                    select(
                        snapshot.c.entity, snapshot.c.source_id, snapshot.c.content_hash, snapshot.c.archived
                    )
                )
            },
            "links": {
                (r.link_type, r.crm_id, r.oa_id)
                for r in conn.execute(select(xref.c.link_type, xref.c.crm_id, xref.c.oa_id))
            },
            "quarantine": {
                (r.entity, r.source_id, r.reason_code)
                for r in conn.execute(
                    select(quarantine.c.entity, quarantine.c.source_id, quarantine.c.reason_code).where(
                        quarantine.c.resolved_at.is_(None)
                    )
                )
            },
            "merges": {
                (r.kept_id, r.merged_id, r.rule)
                for r in conn.execute(
                    select(merge_record.c.kept_id, merge_record.c.merged_id, merge_record.c.rule)
                )
            },
        }


@pytest.fixture
def second_hub(mig_hub_template: Path, tmp_path: Path) -> Iterator[Any]:
    url = hub_copy(mig_hub_template, tmp_path / "hub_b.sqlite")
    yield hub_engine.ensure_schema(url)
    hub_engine.get_engine(url).dispose()


def test_world_defects_are_cleaned_merged_or_quarantined(mig: Any) -> None:
    world = mig.seed(**WORLD)
    defects = world.defects()
    result = mig.run("manual__world", chunk_size=40)
    assert result["status"] == "success"
    state = _state(mig.hub)
    # the pages name the applicants of the migrated OA history (contact directory, once per unknown person)
    from bridge import people

    applicants = {inst.user_id for inst in world.iter_oa_instances()}
    directory = {u["user_id"]: u["name"] for u in mig.sims.oa.admin("GET", "/_sim/users")["users"]}
    with mig.hub.connect() as conn:
        named = people.names(conn, applicants)
    assert named == {u: directory[u] for u in applicants if u in directory}
    loaded = {(e, s) for e, s, _h, archived in state["snapshots"] if not archived}
    held = {(e, s): reason for e, s, reason in state["quarantine"]}
    assert not loaded & set(held), "a quarantined record was loaded"

    # every duplicate customer is merged with its original's group; nothing else is
    merged = {m for _k, m, _r in state["merges"]}
    for _, dup in defects["dup_variant"]:
        original = world.company(int(dup) - COMPANY_ID_BASE - 1).properties.get("_duplicate_of")
        if original is None:
            continue  # the first company cannot duplicate an earlier one
        kept_of = {m: k for k, m, _r in state["merges"]}
        assert kept_of.get(dup, dup) == kept_of.get(original, original), f"{dup} not merged with {original}"
        assert dup in merged or original in merged
    assert merged <= {i for _, i in defects["dup_variant"]} | {
        str(world.company(int(i) - COMPANY_ID_BASE - 1).properties.get("_duplicate_of"))
        for _, i in defects["dup_variant"]
    }
    for m in merged:
        assert ("company", m) not in loaded  # stored marked as merged (archived), not a second live customer

    # the gate: each kind of bad value is quarantined with the expectation that names it
    expected = {
        "missing_uscc": "company.uscc.required",
        "bad_uscc": "company.uscc.format",
        "bad_phone": "company.phone.format",
        "bad_mobile": "contact.mobile.format",
        "missing_mobile": "contact.mobile.required",
        "unmapped_stage": "deal.stage.value_map",
        "missing_amount": "deal.contract_amount.required",
        "negative_amount": "deal.contract_amount.format",
    }
    entity_of = {"companies": "company", "contacts": "contact", "deals": "deal"}
    with mig.hub.connect() as conn:
        messages = {(r.entity, r.source_id): r.message for r in conn.execute(select(quarantine))}
    checked = 0
    for kind, check in expected.items():
        for object_type, oid in defects.get(kind, []):
            key = (entity_of[object_type], oid)
            if oid in merged:
                continue
            assert held.get(key) == "expectation_failed", (kind, oid)
            assert check in messages[key]
            checked += 1
    assert checked >= 10

    # cleanable dirt is cleaned and loaded
    for kind in ("mobile_formatted", "mobile_full_width", "email_upper"):
        for _, oid in defects.get(kind, []):
            snap = mig.snapshot("crm", "contact", oid)
            assert snap is not None
            if kind == "email_upper":
                assert snap.payload["email"] == snap.payload["email"].strip().lower()
            else:
                assert len(snap.payload["mobile"]) == 11
                assert snap.payload["mobile"].isdigit()

    # OA forms without a (known) customer: quarantined naming the applicant; the others linked
    oa_world = mig.oa_world
    form_of = {inst.instance_code: inst.approval for inst in oa_world.iter_oa_instances()}
    missing_links = oa_world.defects().get("missing_customer_link", [])
    assert missing_links
    for _, code in missing_links:
        entity = form_of[code]
        assert held[(entity, code)] == "missing_customer_link"
        assert "申请人" in messages[(entity, code)]
    linked_oa = {oa_id for t, _c, oa_id in state["links"] if t == "company_customer"}
    assert linked_oa == {s for e, s in loaded if e in ("expense_claim", "travel_request", "visit_plan")}

    # nothing is lost: per entity, every record read is written, merged, quarantined, archived or skipped
    with mig.hub.connect() as conn:
        chunks = runs.planned(conn, "manual__world")
    assert all(c.done for c in chunks)
    for c in chunks:
        if c.entity in runs.STEPS:
            continue
        n = c.counts
        assert n["read"] == n["written"] + n["merged"] + sum(n["quarantined"].values()) + n["archived"] + sum(
            n["skipped"].values()
        ), c


def test_dry_run_writes_nothing_and_reports_what_a_real_run_does(mig: Any) -> None:
    mig.seed(**SMALL)
    before, crm_writes = mig.table_sizes(), mig.crm_writes()
    dry = mig.run("manual__dry", chunk_size=50, dry_run=True)
    assert mig.table_sizes() == before
    assert mig.crm_writes() == crm_writes
    assert dry["status"] == "success"
    assert Path(dry["report_html"]).exists()
    assert "试运行" in Path(dry["report_html"]).read_text(encoding="utf-8")
    with mig.hub.connect() as conn:
        run = conn.execute(select(migration_run).where(migration_run.c.run_id == "manual__dry")).one()
    assert run.params["dry_run"] is True
    assert run.status == "success"
    real = mig.run("manual__real", chunk_size=50)
    assert real["counts"] == dry["counts"]
    assert real["counts"]["written_back"] > 0
    assert mig.crm_writes() > crm_writes


def test_rerun_adds_nothing_twice(mig: Any) -> None:
    mig.seed(**SMALL)
    first = mig.run("manual__first", chunk_size=60)
    state, sizes = _state(mig.hub), mig.table_sizes()
    writes = mig.crm_writes()
    second = mig.run("manual__second", chunk_size=60)
    assert _state(mig.hub) == state
    after = mig.table_sizes()
    for table in ("snapshot", "xref", "quarantine", "merge_record"):
        assert after[table] == sizes[table], table
    assert mig.crm_writes() == writes  # the deals already carry their 立项申请
    assert second["counts"]["written_back"] == 0
    assert {k: v for k, v in second["counts"].items() if k not in ("written_back", "skipped")} == {
        k: v for k, v in first["counts"].items() if k not in ("written_back", "skipped")
    }
    assert second["counts"]["skipped"] == first["counts"]["skipped"] + first["counts"]["written_back"]


class CrashingCrm(CrmHook):
    """Pages deals ten at a time and dies once, on the third page of the second deal chunk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deal_chunks = 0
        self.crashed = False

    def iter_changed(
        self, object_type: str, since: Any, properties: Any, until: Any = None, page_size: int = 200
    ) -> Iterator[list[dict[str, Any]]]:
        if object_type != "deals":
            yield from super().iter_changed(object_type, since, properties, until=until, page_size=page_size)
            return
        self.deal_chunks += 1
        for n, page in enumerate(
            super().iter_changed(object_type, since, properties, until=until, page_size=10)
        ):
            if self.deal_chunks == 2 and n == 3 and not self.crashed:
                self.crashed = True
                raise ConnectionError("worker lost (injected)")
            yield page


def test_resume_after_a_crash_continues_and_ends_like_a_clean_run(
    mig: Any, second_hub: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk, "BATCH", 20)  # the crashed chunk has written part of itself
    now_ms = int(datetime.now(UTC).timestamp() * 1000) - 120_000
    world = mig.seed(**WORLD, now_ms=now_ms)
    params = {
        "chunk_size": 50,
        "date_from": (datetime.fromtimestamp(world.now_ms / 1000, tz=UTC) - timedelta(days=800))
        .date()
        .isoformat(),
        **REAL_LOAD,
    }
    m = mig.migration("manual__crash")
    crm = CrashingCrm()
    mig.hooks.append(crm)
    with pytest.raises(ConnectionError, match="injected"):
        steps.run_all(m, params, crm, mig.oa())
    with mig.hub.connect() as conn:
        chunks = {(c.entity, c.chunk_no): c for c in runs.planned(conn, "manual__crash")}
        partial = conn.execute(select(snapshot.c.source_id).where(snapshot.c.entity == "deal")).all()
    failed = [k for k, c in chunks.items() if c.status == "failed"]
    to_redo = [  # the ranged chunks search; each entity's archived-records chunk pages the archived list
        k
        for k, c in chunks.items()
        if not c.done and k[0] in ("company", "contact", "deal") and c.range_from_ms is not None
    ]
    assert failed == [("deal", 1)]
    assert chunks[("deal", 0)].done
    first_chunk = chunks[("deal", 0)].counts
    loaded_first = first_chunk["written"]
    assert loaded_first < len(partial) < 150  # chunk 0 and a part of chunk 1 were loaded before the crash

    # the run is resumed (same run id): done chunks are skipped, the failed one is redone from its start
    again = CrmHook(retry_policy=None)
    mig.hooks.append(again)
    resumed = steps.run_all(mig.migration("manual__crash"), params, again, mig.oa())
    assert resumed["status"] == "success"
    searches = again.api_calls.get("POST /crm/v3/objects/{object_type}/search", 0)
    assert searches == len(to_redo)  # no planning, no de-duplication scan, no done chunk read again

    # a clean run of the same world on another hub ends with the same hub state and the same totals
    mig.seed(**WORLD, now_ms=now_ms)  # the CRM as it was before the first write-back
    clean_data = tmp_path / "clean_data"
    clean = steps.Migration.create(
        "manual__clean", mig.migration("manual__clean").ctx, hub=second_hub, data_dir=clean_data
    )
    result = steps.run_all(clean, params, mig.crm(), mig.oa())
    assert result["counts"] == resumed["counts"]
    assert _state(second_hub) == _state(mig.hub)


def test_archive_cut_off_keeps_old_records_in_the_hub_as_archived(mig: Any) -> None:
    world = mig.seed(**SMALL)
    cutoff = datetime.fromtimestamp(world.now_ms / 1000, tz=UTC).astimezone(SHANGHAI).date() - timedelta(
        days=365
    )
    cutoff_ms = int(datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=SHANGHAI).timestamp() * 1000)
    old_deals = {o.id for o in world.iter_deals() if o.modified_ms < cutoff_ms}
    assert 5 < len(old_deals) < 55
    result = mig.run("manual__archive", chunk_size=80, archive_before=cutoff.isoformat())
    with mig.hub.connect() as conn:
        archived = {
            r.source_id
            for r in conn.execute(
                select(snapshot.c.source_id).where(snapshot.c.entity == "deal", snapshot.c.archived.is_(True))
            )
        }
        held = {
            r.source_id
            for r in conn.execute(select(quarantine.c.source_id).where(quarantine.c.entity == "deal"))
        }
        old_oa = {
            r.source_id
            for r in conn.execute(
                select(snapshot.c.source_id).where(snapshot.c.system == "oa", snapshot.c.archived.is_(True))
            )
        }
        linked = {r.oa_id for r in conn.execute(select(xref.c.oa_id))}
    assert archived == old_deals  # kept in the source, marked archived in the hub
    assert not archived & held  # not validated: no quarantine for the archive
    assert old_oa
    assert not old_oa & linked
    assert result["counts"]["archived"] >= len(old_deals) + len(old_oa)


def test_two_migrations_cannot_run_at_once(mig: Any) -> None:
    mig.seed(**SMALL)
    with pytest.raises(ParamsError, match="chunk_size"):
        steps.start(mig.migration("manual__typo"), {"chunk_size": 1}, mig.crm(), mig.oa())
    with mig.hub.connect() as conn:
        assert store.get_lease(conn, runs.LEASE) is None  # a run refused for its parameters holds nothing
    first = mig.migration("manual__holder")
    steps.start(first, {"entities": ["company"]}, mig.crm(), mig.oa())
    second = mig.migration("manual__intruder")
    with pytest.raises(runs.MigrationLocked, match="历史迁移未开始：运行 manual__holder 持有迁移租约"):
        steps.start(second, {"entities": ["company"]}, mig.crm(), mig.oa())
    from airflow.sdk.exceptions import AirflowFailException

    context = {"run_id": "manual__intruder", "params": {"entities": ["company"]}}
    with pytest.raises(AirflowFailException, match="两次历史迁移不能同时运行"):
        tasks.plan(context)
    with mig.hub.connect() as conn:
        assert runs.get_run(conn, "manual__intruder") is None  # refused before it recorded anything
    # the holder renews while it works; another holder's lease is not released by the intruder
    assert not runs.release_lease(mig.hub, "manual__intruder")
    result = steps.run_all(first, {"entities": ["company"]}, mig.crm(), mig.oa())
    assert result["status"] == "success"  # finishing releases the lease
    later = steps.start(mig.migration("manual__intruder"), {"entities": ["company"]}, mig.crm(), mig.oa())
    assert later["crm_chunks"]
    with mig.hub.connect() as conn:
        rows = conn.execute(
            select(migration_chunk.c.entity).where(migration_chunk.c.run_id == "manual__intruder")
        ).all()
    assert {r.entity for r in rows} == {"company", runs.DEDUPE_STEP}
