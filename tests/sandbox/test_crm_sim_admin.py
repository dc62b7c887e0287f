"""The admin API: health, stats, reset, seeding (deterministic), dump, people's actions, clock."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
from tests.sandbox.conftest_crm import NOW_MS, WORLD_SEED, Crm, crm, running_crm  # noqa: F401

from sandbox.common.world import World, wire_properties
from sandbox.crm.journey_seed import contact_source
from sandbox.crm.model import parse_time_ms


@pytest.fixture(autouse=True)
def _world(crm: Crm) -> None:  # noqa: F811
    crm.reset()


def test_health(crm: Crm) -> None:  # noqa: F811
    body = crm.admin("GET", "/health")
    assert body["status"] == "ok"
    assert body["simulator"] == "hubspot-crm"


def test_stats_count_requests_writes_tokens_and_faults(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/stats/reset")
    crm.login()
    deal = World(seed=WORLD_SEED, now_ms=NOW_MS).deal(0).id
    for _ in range(3):
        crm.ok("GET", f"/crm/v3/objects/deals/{deal}")
    crm.ok("PATCH", f"/crm/v3/objects/deals/{deal}", {"properties": {"amount": "5"}})
    crm.ok("POST", "/crm/v3/objects/deals", {"properties": {"dealname": "x"}}, status=201)
    crm.call("DELETE", f"/crm/v3/objects/deals/{deal}")
    crm.admin("POST", "/faults", {"kind": "error", "path": "/crm/v3/owners", "status": 503})
    assert crm.call("GET", "/crm/v3/owners").status_code == 503
    stats = crm.admin("GET", "/stats")
    assert stats["requests"]["GET /crm/v3/objects/deals/{id}"] == 3
    assert stats["requests"]["POST /oauth/v1/token"] == 1
    assert stats["responses"]["503"] == 1
    assert stats["writes"]["deals"] == {"archived": 1, "created": 1, "updated": 1}
    assert stats["tokens_issued"] == 1
    assert stats["faults_fired"] == {"error": 1}
    assert stats["objects"]["deals"] == 400  # one created, one archived
    crm.admin("POST", "/stats/reset")
    after = crm.admin("GET", "/stats")
    assert after["requests"] == {}
    assert after["writes"] == {}
    assert after["faults_fired"] == {}


def test_reset_empties_the_portal(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/faults", {"kind": "latency", "latency_ms": 1})
    crm.admin("POST", "/clock", {"offset_ms": 5000})
    crm.admin("POST", "/reset")
    assert crm.dump("deals") == []
    assert crm.admin("GET", "/faults")["rules"] == []
    assert crm.admin("GET", "/clock")["offset_ms"] == 0


def test_seed_matches_the_world_and_is_deterministic(crm: Crm) -> None:  # noqa: F811
    request = {"seed": 99, "companies": 30, "contacts_per_company": 2, "deals": 80, "dirty_share": 0.2,
               "now_ms": NOW_MS}
    result = crm.admin("POST", "/seed", request)
    assert (result["companies"], result["contacts"], result["deals"]) == (30, 60, 80)
    first = {t: crm.dump(t) for t in ("companies", "contacts", "deals")}
    world = World(seed=99, companies=30, contacts_per_company=2, deals=80, dirty_share=0.2, now_ms=NOW_MS,
                  oa_instances=0)
    expected = {obj.id: wire_properties(obj) for obj in
                [*world.iter_companies(), *world.iter_contacts(), *world.iter_deals()]}
    for i, contact in enumerate(world.iter_contacts()):  # the journey's original source (journey_seed)
        expected[contact.id].update(contact_source(99, i).properties)
    for records in first.values():
        for rec in records:
            props = dict(rec["properties"])
            props.pop("hs_object_id")
            props.pop("lastmodifieddate", None)
            assert props == expected[rec["id"]]
    crm.admin("POST", "/seed", request)
    assert {t: crm.dump(t) for t in first} == first
    crm.admin("POST", "/seed", {**request, "seed": 100})
    assert crm.dump("deals") != first["deals"]


def test_seed_option_at_start_up_loads_the_default_world_once(tmp_path: Path) -> None:
    with running_crm(tmp_path, "--seed", "5", seed=None) as c:
        counts = c.admin("GET", "/stats")["objects"]
        assert (counts["companies"], counts["contacts"], counts["deals"]) == (200, 400, 400)
        c.admin("POST", "/act/archive", {"object_type": "deals", "id": World(seed=5).deal(0).id})
        c.proc.stop()
        c.proc.start()  # same database, not empty: no reseed
        assert c.admin("GET", "/stats")["objects"]["deals"] == 399


def test_dump_pages_and_shows_archived(crm: Crm) -> None:  # noqa: F811
    page = crm.admin("GET", "/objects/deals?limit=150")
    assert len(page["results"]) == 150
    nxt = crm.admin("GET", f"/objects/deals?limit=150&after={page['paging']['next']['after']}")
    assert page["results"][-1]["id"] < nxt["results"][0]["id"]
    victim = page["results"][0]["id"]
    crm.admin("POST", "/act/archive", {"object_type": "deals", "ids": [victim]})
    assert victim not in {r["id"] for r in crm.dump("deals")}
    assert [r["id"] for r in crm.dump("deals", archived="true")] == [victim]
    assert len(crm.dump("deals", archived="any")) == 400


def test_act_update_writes_n_times_with_distinct_timestamps(crm: Crm) -> None:  # noqa: F811
    deal = World(seed=WORLD_SEED, now_ms=NOW_MS).deal(9).id
    crm.admin("POST", "/stats/reset")
    body = crm.admin("POST", "/act/update", {"object_type": "deals", "id": deal, "times": 10,
                                              "properties": [{"amount": str(n)} for n in range(10)]})
    stamps = body["modified_ms"]
    assert len(stamps) == 10
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert body["object"]["properties"]["amount"] == "9"
    assert crm.admin("GET", "/stats")["writes"]["deals"]["updated"] == 10
    # a person may store what the API refuses (dirty data)
    crm.admin("POST", "/act/update", {"object_type": "deals", "id": deal, "properties": {"dealstage": "weird"}})
    got = crm.ok("GET", f"/crm/v3/objects/deals/{deal}", params={"properties": "dealstage"})
    assert got["properties"]["dealstage"] == "weird"


def test_act_create_with_associations(crm: Crm) -> None:  # noqa: F811
    company = World(seed=WORLD_SEED, now_ms=NOW_MS).company(0).id
    made = crm.admin("POST", "/act/create", {"object_type": "deals", "properties": {"dealname": "人工创建"},
                                              "associations": {"companies": [company]}}, status=201)
    links = crm.ok("GET", f"/crm/v4/objects/deals/{made['id']}/associations/companies")["results"]
    assert [str(r["toObjectId"]) for r in links] == [company]


def test_act_on_missing_record_is_404(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/act/update", {"object_type": "deals", "id": 1, "properties": {}}, status=404)
    crm.admin("POST", "/act/update", {"object_type": "nope", "id": 1}, status=400)


def test_clock_offset_moves_hs_lastmodifieddate(crm: Crm) -> None:  # noqa: F811
    crm.admin("POST", "/clock", {"offset_ms": 86_400_000})
    try:
        now = crm.admin("GET", "/clock")["now_ms"]
        crm.login()  # the skew expired the old token, as it would on a real server
        made = crm.ok("POST", "/crm/v3/objects/deals", {"properties": {"dealname": "明天"}}, status=201)
        stamp = made["properties"]["hs_lastmodifieddate"]
        assert abs((parse_time_ms(stamp) or 0) - now) < 5_000
    finally:
        crm.admin("POST", "/clock", {"offset_ms": 0})
        crm.token = None


def test_vendor_calls_during_a_seed_get_a_retryable_503(crm: Crm) -> None:  # noqa: F811
    crm.login()
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(crm.admin("POST", "/seed", {
        "seed": 4, "companies": 500, "contacts_per_company": 0, "deals": 40_000, "now_ms": NOW_MS})))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while crm.admin("GET", "/health")["status"] != "seeding":
            assert time.monotonic() < deadline, "the seed never showed in /_sim/health"
            time.sleep(0.005)
        resp = crm.call("GET", "/crm/v3/objects/deals?limit=1")
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "5"
        crm.admin("POST", "/act/update", {"object_type": "deals", "id": 1, "properties": {}}, status=409)
    finally:
        worker.join(60)
    assert done
    assert crm.admin("GET", "/health")["status"] == "ok"
    assert crm.call("GET", "/crm/v3/objects/deals?limit=1").status_code == 200
