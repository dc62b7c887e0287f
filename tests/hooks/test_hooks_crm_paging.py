"""CrmHook.iter_changed over real HTTP: the search cap, ties on one millisecond, records moving while we page,
and servers that misbehave (wrong-shape records, repeated pages, looping cursors)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tests.hooks.hooks_support import RATE_LIMITS_OFF, Sim, crm_hook, sim_fixture

from bridge.hooks.crm import CrmHook, _parse_ms

NOW_MS = 1_795_000_000_000
PROPS = ["dealname", "amount"]


crm = sim_fixture("crm", "crm_paging", *RATE_LIMITS_OFF)


@pytest.fixture
def hook(crm: Sim, monkeypatch: pytest.MonkeyPatch) -> CrmHook:
    crm.reset(("POST", "/clock", {"freeze_ms": None, "offset_ms": 0}))
    return crm_hook(crm, monkeypatch)


def seed(crm: Sim, deals: int) -> None:
    crm.admin(
        "POST",
        "/seed",
        {
            "seed": 7,
            "companies": max(1, deals // 20),
            "contacts_per_company": 0,
            "deals": deals,
            "now_ms": NOW_MS,
        },
    )


def all_ids(crm: Sim, object_type: str = "deals") -> list[str]:
    ids: list[str] = []
    after = "0"
    while True:
        page = crm.admin("GET", f"/objects/{object_type}", params={"after": after, "limit": 10000})
        ids.extend(str(o["id"]) for o in page["results"])
        nxt = page.get("paging", {}).get("next", {}).get("after")
        if not nxt:
            return ids
        after = nxt


def stamp(obj: dict[str, Any]) -> int:
    value = _parse_ms(obj["properties"]["hs_lastmodifieddate"])
    assert value is not None
    return value


def test_pages_every_deal_once_across_the_search_cap(
    crm: Sim, hook: CrmHook, caplog: pytest.LogCaptureFixture
) -> None:
    seed(crm, 12_000)
    caplog.set_level(logging.INFO, logger="bridge.hooks")
    pages = list(hook.iter_changed("deals", 0, PROPS))
    got = [o["id"] for p in pages for o in p]
    assert len(got) == len(set(got)) == 12_000
    assert set(got) == set(all_ids(crm))
    stamps = [stamp(o) for p in pages for o in p]
    assert stamps == sorted(stamps), "pages must come in ascending hs_lastmodifieddate"
    assert all(set(o["properties"]) >= {"dealname", "amount", "hs_lastmodifieddate"} for o in pages[0])
    assert any("10,000-result cap" in r.getMessage() for r in caplog.records), "the cap was never crossed"
    searches = crm.requests_to("POST /crm/v3/objects/deals/search")
    assert hook.api_calls["POST /crm/v3/objects/{object_type}/search"] == searches
    assert searches <= 12_000 / 199 + 3  # one overlap record per page, one restart at the cap


def test_thousands_of_ties_on_one_millisecond_cross_the_cap(
    crm: Sim, hook: CrmHook, caplog: pytest.LogCaptureFixture
) -> None:
    crm.admin("POST", "/reset")
    tie = NOW_MS - 3_600_000
    seeded: list[tuple[int, str | None]] = []
    for at, n in ((tie - 1, 30), (tie, 10_300), (tie + 1, 250), (tie + 2, 3)):
        crm.admin("POST", "/clock", {"freeze_ms": at})
        outcomes = hook.batch_create("deals", [{"dealname": f"同一毫秒 {at} {k}"} for k in range(n)])
        assert all(o.status == "created" for o in outcomes)
        seeded.extend((at, o.id) for o in outcomes)
    crm.admin("POST", "/clock", {"freeze_ms": None})
    caplog.set_level(logging.INFO, logger="bridge.hooks")

    pages = list(hook.iter_changed("deals", tie, PROPS, until=tie + 2))
    got = [o["id"] for p in pages for o in p]
    expected = {oid for at, oid in seeded if tie <= at < tie + 2}
    assert len(got) == len(set(got)), "a record was yielded twice"
    assert set(got) == expected
    assert len(expected) == 10_550
    stamps = [stamp(o) for p in pages for o in p]
    assert stamps == sorted(stamps)
    assert any("reading it by id" in r.getMessage() for r in caplog.records)


def test_edits_archives_and_inserts_while_paging_lose_nothing(
    crm: Sim, hook: CrmHook, caplog: pytest.LogCaptureFixture
) -> None:
    """HubSpot's ``after`` is an offset: an edited record that was already read moves to the end and every
    unread record shifts one place left. An offset reader skips one record per such edit; the hook must not."""
    seed(crm, 3_000)
    before = set(all_ids(crm))
    caplog.set_level(logging.INFO, logger="bridge.hooks")
    pages: list[list[dict[str, Any]]] = []
    added: list[str] = []
    edited_read: list[str] = []
    archived: list[str] = []
    for n, page in enumerate(hook.iter_changed("deals", 0, PROPS, page_size=100)):
        pages.append(page)
        if n in (2, 7):
            # People at work between two of our pages: edit read records, archive one, edit unread ones, add some.
            read_ids = [o["id"] for o in pages[n - 1]]
            for oid in read_ids[:4]:
                crm.admin(
                    "POST",
                    "/act/update",
                    {"object_type": "deals", "id": int(oid), "properties": {"description": f"edit {n}"}},
                )
                edited_read.append(oid)
            crm.admin("POST", "/act/archive", {"object_type": "deals", "id": int(read_ids[10])})
            archived.append(read_ids[10])
            for k in range(3):
                created = crm.admin(
                    "POST",
                    "/act/create",
                    {"object_type": "deals", "properties": {"dealname": f"新商机 {n}-{k}"}},
                )
                added.append(str(created["id"]))
    got = [o["id"] for p in pages for o in p]
    counts: dict[str, int] = {}
    for oid in got:
        counts[oid] = counts.get(oid, 0) + 1
    assert before | set(added) <= set(got), f"lost: {sorted(before | set(added) - set(got))[:10]}"
    twice = {oid for oid, c in counts.items() if c > 1}
    assert twice <= set(edited_read), "only records edited after they were read may come back (newer version)"
    for oid in twice:
        versions = [stamp(o) for p in pages for o in p if o["id"] == oid]
        assert versions == sorted(set(versions)), "a record read twice comes back with a newer version"
    assert any("records moved while paging" in r.getMessage() for r in caplog.records)


def test_wrong_shape_records_are_skipped_and_reported(
    crm: Sim, hook: CrmHook, caplog: pytest.LogCaptureFixture
) -> None:
    seed(crm, 1_000)
    crm.fault(kind="wrong_shape", path="/search$", count=2, seed=3)
    caplog.set_level(logging.WARNING, logger="bridge.hooks")
    got = [o["id"] for p in hook.iter_changed("deals", 0, PROPS) for o in p]
    skipped = [s.id for s in hook.skipped_records]
    assert len(skipped) == 2
    assert hook.skipped["deals"] == 2
    assert all(s is not None for s in skipped)
    assert len(got) == len(set(got))
    assert set(got) | set(skipped) == set(all_ids(crm))
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert all(f"record {s} skipped" in logged for s in skipped)


def test_a_repeated_page_is_noticed_and_nothing_is_read_twice(crm: Sim, hook: CrmHook) -> None:
    seed(crm, 2_000)
    crm.fault(kind="repeat_page", path="/search$", count=1, rate=1.0)
    got = [o["id"] for p in hook.iter_changed("deals", 0, PROPS) for o in p]
    assert len(got) == len(set(got)) == 2_000
    assert crm.stats()["faults_fired"].get("repeat_page") == 1


def test_pages_repeated_without_end_still_terminate_exactly(crm: Sim, hook: CrmHook) -> None:
    seed(crm, 1_500)
    crm.fault(kind="repeat_page", path="/search$", rate=1.0)
    got = [o["id"] for p in hook.iter_changed("deals", 0, PROPS) for o in p]
    assert len(got) == len(set(got)) == 1_500
    assert crm.stats()["faults_fired"]["repeat_page"] >= 7


def test_a_looping_cursor_cannot_trap_the_reader(crm: Sim, hook: CrmHook) -> None:
    seed(crm, 2_000)
    crm.fault(kind="loop_cursor", path="/search$", rate=1.0)
    got = [o["id"] for p in hook.iter_changed("deals", 0, PROPS) for o in p]
    assert len(got) == len(set(got)) == 2_000
    assert crm.stats()["faults_fired"].get("loop_cursor", 0) >= 10


def test_since_and_until_accept_aware_datetimes_and_refuse_naive_ones(crm: Sim, hook: CrmHook) -> None:
    from datetime import UTC, datetime

    seed(crm, 600)
    stamps = sorted(stamp(o) for p in hook.iter_changed("deals", 0, PROPS) for o in p)
    lo, hi = stamps[100], stamps[400]
    window = [
        o
        for p in hook.iter_changed(
            "deals",
            datetime.fromtimestamp(lo / 1000, UTC),
            PROPS,
            until=datetime.fromtimestamp(hi / 1000, UTC),
        )
        for o in p
    ]
    assert sorted(stamp(o) for o in window) == [s for s in stamps if lo <= s < hi]
    with pytest.raises(ValueError, match="timezone-aware"):
        next(hook.iter_changed("deals", datetime(2026, 1, 1), PROPS))


def test_contacts_page_on_lastmodifieddate(crm: Sim, hook: CrmHook) -> None:
    crm.admin(
        "POST", "/seed", {"seed": 7, "companies": 50, "contacts_per_company": 3, "deals": 0, "now_ms": NOW_MS}
    )
    got = [o for p in hook.iter_changed("contacts", 0, ["email"]) for o in p]
    assert len(got) == 150 == len(all_ids(crm, "contacts"))
    assert all("lastmodifieddate" in o["properties"] for o in got)
    records = [r for p in hook.iter_changed_records("contacts", 0, ["email"]) for r in p]
    assert [r.id for r in records] == [str(o["id"]) for o in got]
    assert all(
        r.created and r.modified == o["properties"]["lastmodifieddate"]
        for r, o in zip(records, got, strict=True)
    )
    assert all("email" in r.properties for r in records)
