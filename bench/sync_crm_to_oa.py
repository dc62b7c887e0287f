"""CRM → OA sync at volume: the bridge end to end vs the bare-HTTP floor, and the debounce scenario.

Three measurements, each on freshly started simulators (rate limits off, so
the figures are the client's and the servers', not the vendors' quotas):

``run_bridge(deals)``
    The CRM is seeded with ``deals`` clean deals; a first sync run stages them
    (the baseline, not timed); then every deal moves to 合同签订 (admin API,
    not timed). Timed: one sync cycle as the DAG runs it (``run_cycle``:
    extract + stage + debounce queue, decide, create the 立项申请, read its
    serial number, confirm in the hub, write back in batches of 100, summary).
``run_floor(deals)``
    The same data and the same *necessary* API calls made by a bare
    ``requests`` client with no Airflow, no hub, no dictionary: search the
    changed deals, read their companies (associations v4), owners and OA
    users, create + get each instance, batch-update the deals.
``run_debounce(deals, edits)``
    ``deals`` deals edited ``edits`` times each inside the debounce window
    (an extract and a load after every round of edits, the virtual clock
    moving 9 s per round), then quiet: counts the OA writes (goal: exactly
    ``deals``); then ``deals`` notes-only edits: OA writes (goal: 0).

    .venv/bin/python bench/sync_crm_to_oa.py --deals 10000 --debounce-deals 1000 --rounds 3 --json /tmp/c2o.json

Importable (issue 11's ``make bench``): ``run_bridge``, ``run_floor`` and
``run_debounce`` return dicts of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.bare_clients import crm_session, oa_session  # noqa: E402
from sandbox import launcher  # noqa: E402

SEED = 20261126
FORMER_OWNER, ACTIVE_OWNER = "70000999", "70000001"
PROJECT_CODE = "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1001"
# The change people make: every deal reaches 合同签订 with its final amount (stage and amount are both
# mapped, so every deal's content hash changes, also for deals that were already in that stage).
CHANGE = {"dealstage": "contractsent", "amount": "123456.00"}
DEAL_PROPS = ["dealname", "dealstage", "amount", "closedate", "hubspot_owner_id", "createdate",
              "hs_lastmodifieddate", "hs_object_id"]


# ---------------------------------------------------------------- set-up


@contextmanager
def _world(deals: int, base: Path) -> Iterator[launcher.Simulators]:
    """Fresh simulators with ``deals`` clean deals (no dirty data), rate limits off."""
    companies = max(50, deals // 10)
    with launcher.simulators(base / "sims", seed=None, max_lifetime=7200,
                             crm_args=["--rate-limits", "off"], oa_args=["--rate-limits", "off"]) as sims:
        sims.crm.admin("POST", "/_sim/seed", {"seed": SEED, "companies": companies, "contacts_per_company": 2,
                                               "deals": deals, "dirty_share": 0.0}, timeout=1800)
        # The world gives ~1 % of customers to a sales person who left (no OA account): those deals would be
        # quarantined (owner_not_in_oa, covered by the tests). Here every deal must be syncable.
        orphans = [str(d["id"]) for d in _all_deals(sims) if d["properties"].get("hubspot_owner_id") == FORMER_OWNER]
        _act_all(sims, orphans, {"hubspot_owner_id": ACTIVE_OWNER})
        yield sims


def _all_deals(sims: launcher.Simulators) -> list[dict[str, Any]]:
    deals: list[dict[str, Any]] = []
    after = 0
    while True:
        page = sims.crm.admin("GET", f"/_sim/objects/deals?after={after}&limit=10000")
        assert isinstance(page, dict)
        deals.extend(page["results"])
        nxt = page.get("paging", {}).get("next", {}).get("after")
        if not nxt:
            return deals
        after = int(nxt)


def _all_deal_ids(sims: launcher.Simulators) -> list[str]:
    return [str(d["id"]) for d in _all_deals(sims)]


def _act_all(sims: launcher.Simulators, ids: list[str], props: Any, times: int = 1) -> float:
    """People edit every deal (admin API, 4 threads); returns seconds."""
    started = time.perf_counter()
    session = requests.Session()

    def one(deal_id: str) -> None:
        r = session.post(sims.crm.url + "/_sim/act/update", json={"object_type": "deals", "id": int(deal_id),
                                                                  "properties": props, "times": times}, timeout=60)
        r.raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, ids))
    return time.perf_counter() - started


def _oa_created(sims: launcher.Simulators, form: str = "project_initiation") -> Counter[str]:
    """Instances the client created per deal id (origin api)."""
    per_deal: Counter[str] = Counter()
    offset = 0
    while True:
        page = sims.oa.admin("GET", f"/_sim/instances?approval={form}&origin=api&offset={offset}&limit=1000")
        assert isinstance(page, dict)
        for item in page["items"]:
            widgets = {w["id"]: w.get("value") for w in json.loads(item["form"])}
            per_deal[str(widgets.get("deal_id"))] += 1
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return per_deal


def _bridge(sims: launcher.Simulators, hub_path: Path, **overrides: Any) -> dict[str, Any]:
    for key, value in sims.connection_env().items():
        os.environ[key] = value
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.hub import engine
    from bridge.sync import crm_to_oa

    cfg = crm_to_oa.with_overrides(crm_to_oa.CrmToOaSettings.from_settings(), initial_backfill_seconds=0,
                                   max_changes_per_run=1_000_000, **overrides)
    return {"crm": CrmHook(), "oa": OaHook(), "hub": engine.ensure_schema(f"sqlite:///{hub_path}"), "cfg": cfg}


# ---------------------------------------------------------------- the bridge


def run_bridge(deals: int = 10_000, base: Path | None = None) -> dict[str, Any]:
    """Time to sync ``deals`` changed deals end to end through the bridge's engine (one DAG run's work)."""
    from bridge.context import RunContext
    from bridge.sync import crm_to_oa
    from bridge.sync.frame import total_calls

    base = base or Path(tempfile.mkdtemp(prefix="bench_c2o_"))
    with _world(deals, base) as sims:
        b = _bridge(sims, base / "hub.sqlite")
        ctx = RunContext(dag_id="crm_to_oa_sync", run_id="bench", task_id=None, try_number=1, principal="bench")
        started = time.perf_counter()
        crm_to_oa.extract_stage(b["crm"], b["hub"], ctx, b["cfg"], datetime.now(UTC))
        baseline_s = time.perf_counter() - started
        ids = _all_deal_ids(sims)
        edit_s = _act_all(sims, ids, CHANGE)
        b["crm"].api_calls.clear()
        b["oa"].api_calls.clear()
        now = datetime.now(UTC)
        started = time.perf_counter()
        extracted = crm_to_oa.extract_stage(b["crm"], b["hub"], ctx, b["cfg"], now)
        extract_s = time.perf_counter() - started
        loaded = crm_to_oa.load(b["crm"], b["oa"], b["hub"], ctx, b["cfg"], now + timedelta(seconds=61))
        summary = crm_to_oa.summarise(b["hub"], ctx, {"extract_stage": extracted.as_dict(),
                                                      "load": loaded.as_dict()}, now)
        wall = time.perf_counter() - started
        created = _oa_created(sims)
        calls = {"crm": dict(b["crm"].api_calls), "oa": dict(b["oa"].api_calls)}
        synced = loaded.counts.get("instances_created", 0)
        for hook in (b["crm"], b["oa"]):
            hook.close()
        return {
            "deals": deals,
            "synced": synced,
            "quarantined": loaded.counts.get("quarantined", 0),
            "duplicates": sum(n - 1 for n in created.values() if n > 1),
            "writebacks": loaded.counts.get("writebacks", 0),
            "wall_s": round(wall, 2),
            "extract_s": round(extract_s, 2),
            "load_s": round(wall - extract_s, 2),
            "records_per_s": round(synced / wall, 1) if wall else None,
            "api_calls": total_calls(calls, include_auth=True),
            "api_calls_per_record": round(total_calls(calls, include_auth=True) / synced, 3) if synced else None,
            "api_calls_by_endpoint": calls,
            "baseline_run_s": round(baseline_s, 2),
            "setup_edit_s": round(edit_s, 2),
            "status": summary["status"],
        }


# ---------------------------------------------------------------- the floor


def _ms(raw: str) -> int:
    return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def run_floor(deals: int = 10_000, base: Path | None = None) -> dict[str, Any]:
    """The same necessary API calls with a bare HTTP client: no Airflow, no hub, no dictionary, no retries."""
    base = base or Path(tempfile.mkdtemp(prefix="bench_c2o_floor_"))
    with _world(deals, base) as sims:
        since = int(time.time() * 1000)
        ids = _all_deal_ids(sims)
        _act_all(sims, ids, CHANGE)
        calls: Counter[str] = Counter()
        started = time.perf_counter()
        crm, oa = crm_session(sims.crm.url), oa_session(sims.oa.url)
        calls["crm token"] += 1
        calls["oa token"] += 1
        # Changed deals, keyset paging on hs_lastmodifieddate (what any correct incremental reader must do).
        changed: list[dict[str, Any]] = []
        company_of: dict[str, str] = {}
        lower, seen_at_lower = since, set()
        while True:
            body = {"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                                   "value": str(lower)}]}], "limit": 200, "properties": DEAL_PROPS,
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]}
            r = crm.post(sims.crm.url + "/crm/v3/objects/deals/search", json=body, timeout=60)
            calls["crm search"] += 1
            r.raise_for_status()
            results = r.json()["results"]
            fresh = [o for o in results if not (_ms(o["properties"]["hs_lastmodifieddate"]) == lower
                                                and o["id"] in seen_at_lower)]
            if fresh:
                a = crm.post(sims.crm.url + "/crm/v4/associations/deals/companies/batch/read",
                             json={"inputs": [{"id": o["id"]} for o in fresh]}, timeout=60)
                calls["crm associations"] += 1
                for item in a.json().get("results", []):
                    if item.get("to"):
                        company_of[str(item["from"]["id"])] = str(item["to"][0]["toObjectId"])
                changed.extend(fresh)
            if len(results) < 200:
                break
            last = _ms(results[-1]["properties"]["hs_lastmodifieddate"])
            seen_at_lower = {o["id"] for o in results if _ms(o["properties"]["hs_lastmodifieddate"]) == last} | (
                seen_at_lower if last == lower else set())
            lower = last
        # The customer data the form shows: the bridge has it in the hub (staged by earlier runs); a client
        # without state reads it: companies by batch, their contacts through associations v4.
        companies: dict[str, dict[str, Any]] = {}
        company_ids = sorted(set(company_of.values()))
        for start in range(0, len(company_ids), 100):
            r = crm.post(sims.crm.url + "/crm/v3/objects/companies/batch/read", timeout=60, json={
                "inputs": [{"id": c} for c in company_ids[start:start + 100]], "properties": ["name", "uscc"],
                "propertiesWithHistory": []})
            calls["crm companies"] += 1
            companies.update({str(o["id"]): o["properties"] for o in r.json()["results"]})
        contact_of: dict[str, str] = {}
        for start in range(0, len(company_ids), 1000):
            a = crm.post(sims.crm.url + "/crm/v4/associations/companies/contacts/batch/read",
                         json={"inputs": [{"id": c} for c in company_ids[start:start + 1000]]}, timeout=60)
            calls["crm associations"] += 1
            for item in a.json().get("results", []):
                if item.get("to"):
                    contact_of[str(item["from"]["id"])] = str(min(int(t["toObjectId"]) for t in item["to"]))
        contacts: dict[str, dict[str, Any]] = {}
        contact_ids = sorted(set(contact_of.values()))
        for start in range(0, len(contact_ids), 100):
            r = crm.post(sims.crm.url + "/crm/v3/objects/contacts/batch/read", timeout=60, json={
                "inputs": [{"id": c} for c in contact_ids[start:start + 100]],
                "properties": ["lastname", "firstname", "mobilephone"], "propertiesWithHistory": []})
            calls["crm contacts"] += 1
            contacts.update({str(o["id"]): o["properties"] for o in r.json()["results"]})
        owners = crm.get(sims.crm.url + "/crm/v3/owners", params={"limit": 500}, timeout=30).json()["results"]
        calls["crm owners"] += 1
        emails = {str(o["id"]): o["email"] for o in owners}
        users: dict[str, str] = {}
        email_list = sorted(set(emails.values()))
        for start in range(0, len(email_list), 50):
            r = oa.post(sims.oa.url + "/open-apis/contact/v3/users/batch_get_id", params={"user_id_type": "user_id"},
                        json={"emails": email_list[start:start + 50]}, timeout=30)
            calls["oa users"] += 1
            for item in r.json()["data"]["user_list"]:
                if item.get("user_id"):
                    users[item["email"]] = item["user_id"]
        writebacks: list[dict[str, Any]] = []
        created = 0
        for deal in changed:
            props = deal["properties"]
            user = users.get(emails.get(props["hubspot_owner_id"], ""))
            if not user:
                continue
            cid = company_of.get(deal["id"], "")
            company = companies.get(cid, {})
            contact = contacts.get(contact_of.get(cid, ""), {})
            uscc = company.get("uscc") or ""
            # The same widgets the bridge sends (the audience's masks applied by hand).
            form = [{"id": "project_name", "type": "input", "value": props["dealname"]},
                    {"id": "deal_id", "type": "input", "value": deal["id"]},
                    {"id": "customer_id", "type": "input", "value": cid},
                    {"id": "customer_name", "type": "input", "value": company.get("name") or ""},
                    {"id": "customer_uscc", "type": "input", "value": uscc[:4] + "*" * 10 + uscc[-4:]},
                    {"id": "contract_amount", "type": "amount", "value": float(props["amount"])},
                    {"id": "close_date", "type": "date", "value": props["closedate"][:10] + "T00:00:00+08:00"},
                    {"id": "project_stage", "type": "radioV2", "value": "立项"},
                    {"id": "contact_name", "type": "input",
                     "value": (contact.get("lastname") or "") + (contact.get("firstname") or "")},
                    {"id": "contact_mobile", "type": "input", "value": contact.get("mobilephone") or ""}]
            r = oa.post(sims.oa.url + "/open-apis/approval/v4/instances", timeout=30, json={
                "approval_code": PROJECT_CODE, "user_id": user, "uuid": f"floor-{deal['id']}",
                "title": "立项申请：" + props["dealname"], "form": json.dumps(form, ensure_ascii=False)})
            r.raise_for_status()
            calls["oa create"] += 1
            code = r.json()["data"]["instance_code"]
            detail = oa.get(sims.oa.url + f"/open-apis/approval/v4/instances/{code}", timeout=30).json()["data"]
            calls["oa get"] += 1
            created += 1
            writebacks.append({"id": deal["id"], "properties": {"oa_instance_code": code,
                                                                "oa_project_no": detail["serial_number"],
                                                                "oa_approval_status": detail["status"],
                                                                "oa_project_stage": "initiated"}})
        for start in range(0, len(writebacks), 100):
            r = crm.post(sims.crm.url + "/crm/v3/objects/deals/batch/update",
                         json={"inputs": writebacks[start:start + 100]}, timeout=60)
            calls["crm batch update"] += 1
            r.raise_for_status()
        wall = time.perf_counter() - started
        total = sum(calls.values())
        return {"deals": deals, "read": len(changed), "synced": created, "wall_s": round(wall, 2),
                "records_per_s": round(created / wall, 1) if wall else None, "api_calls": total,
                "api_calls_per_record": round(total / created, 3) if created else None,
                "api_calls_by_kind": dict(calls)}


# ---------------------------------------------------------------- debounce


def run_debounce(deals: int = 1000, edits: int = 12, base: Path | None = None) -> dict[str, Any]:
    """OA writes for ``deals`` deals edited ``edits`` times inside the window, then for notes-only edits."""
    from bridge.context import RunContext
    from bridge.sync import crm_to_oa

    base = base or Path(tempfile.mkdtemp(prefix="bench_c2o_debounce_"))
    with _world(deals, base) as sims:
        b = _bridge(sims, base / "hub.sqlite")
        ctx = RunContext(dag_id="crm_to_oa_sync", run_id="bench", task_id=None, try_number=1, principal="bench")
        now = datetime.now(UTC)
        crm_to_oa.extract_stage(b["crm"], b["hub"], ctx, b["cfg"], now)
        ids = _all_deal_ids(sims)
        written_during = 0
        started = time.perf_counter()
        for n in range(edits):
            props = {"amount": f"{100000 + n}.00"}
            if n == 0:
                props["dealstage"] = "contractsent"
            _act_all(sims, ids, props)
            crm_to_oa.extract_stage(b["crm"], b["hub"], ctx, b["cfg"], now)
            now += timedelta(seconds=9)
            written_during += crm_to_oa.load(b["crm"], b["oa"], b["hub"], ctx, b["cfg"], now).counts.get("written", 0)
        now += timedelta(seconds=61)
        final = crm_to_oa.load(b["crm"], b["oa"], b["hub"], ctx, b["cfg"], now)
        edits_s = time.perf_counter() - started
        projects = _oa_created(sims)
        notices = _oa_created(sims, "contract_amount_notice")
        # Notes only.
        _act_all(sims, ids, {"description": "跟进记录：客户电话沟通"})
        now += timedelta(seconds=5)
        notes_extract = crm_to_oa.extract_stage(b["crm"], b["hub"], ctx, b["cfg"], now)
        now += timedelta(seconds=61)
        notes_load = crm_to_oa.load(b["crm"], b["oa"], b["hub"], ctx, b["cfg"], now)
        after_notes = sum(_oa_created(sims).values()) + sum(_oa_created(sims, "contract_amount_notice").values())
        for hook in (b["crm"], b["oa"]):
            hook.close()
        return {
            "deals": deals,
            "edits_per_deal": edits,
            "oa_writes_during_window": written_during,
            "oa_writes_after_quiet": final.counts.get("written", 0),
            "projects_created": sum(projects.values()),
            "deals_with_more_than_one": sum(1 for v in projects.values() if v > 1),
            "notices": sum(notices.values()),
            "notes_only_read": notes_extract.counts.get("read_deal", 0),
            "notes_only_enqueued": notes_extract.counts.get("enqueued", 0),
            "notes_only_oa_writes": notes_load.counts.get("written", 0)
            + (after_notes - sum(projects.values()) - sum(notices.values())),
            "wall_s": round(edits_s, 2),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--debounce-deals", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=1, help="bridge/floor rounds, alternating (median reported)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["bridge", "floor", "debounce"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine_cpus": os.cpu_count()}
    # Rounds alternate bridge and floor (the machine is shared: alternating spreads the noise); the
    # round with the median wall time of each is reported, every round is kept.
    rounds: dict[str, list[dict[str, Any]]] = {"bridge": [], "floor": []}
    for n in range(args.rounds):
        for name, run in (("bridge", run_bridge), ("floor", run_floor)):
            if name in args.skip:
                continue
            result = run(args.deals)
            rounds[name].append(result)
            print(f"{name} (round {n + 1}):", json.dumps(result, ensure_ascii=False), flush=True)
    for name, results in rounds.items():
        if results:
            out[name] = sorted(results, key=lambda r: r["wall_s"])[len(results) // 2]
            out[f"{name}_rounds_wall_s"] = [r["wall_s"] for r in results]
    if "bridge" in out and "floor" in out and out["floor"]["wall_s"]:
        out["bridge_vs_floor"] = round(out["bridge"]["wall_s"] / out["floor"]["wall_s"], 2)
        print(f"bridge / floor wall time (medians): {out['bridge_vs_floor']}×", flush=True)
    if "debounce" not in args.skip:
        out["debounce"] = run_debounce(args.debounce_deals, args.edits)
        print("debounce:", json.dumps(out["debounce"], ensure_ascii=False), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
