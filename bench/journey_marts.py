"""The journey marts computed on demand over a synthetic SQLite hub: funnel, people × satisfaction facts, one
customer's timeline, the customer search and the stage recorder.

Snapshots are written through ``bridge.hub.store.upsert_snapshots`` (the staging's writer) with the canonical
fields the marts read: N companies, 3N contacts and their sources, 20 campaigns, 200 events, N participations,
2N deals, N survey answers. The hub is kept under ``data/bench/journey_<N>.sqlite`` and reused.

    .venv/bin/python bench/journey_marts.py --companies 20000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bridge import permissions  # noqa: E402
from bridge.hub import engine as hub_engine  # noqa: E402
from bridge.hub import store  # noqa: E402
from bridge.journey import funnel, marts, views  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
Make = Callable[[int], tuple[str, dict[str, Any]]]


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _stage(engine: Any, entity: str, make: Make, n: int) -> None:
    rows = [store.SnapshotRow(sid, f"h{i}", payload, 1_700_000_000_000 + i) for i, (sid, payload) in
            ((i, make(i)) for i in range(n))]
    with engine.begin() as conn:
        store.upsert_snapshots(conn, "crm", entity, rows, now=NOW)


def stage(engine: Any, n: int) -> None:
    rng = random.Random(7)
    _stage(engine, "company", lambda i: (str(i), {"crm_id": str(i), "name": f"公司{i}", "owner_id": str(700 + i % 40),
                                                  "created_at": _iso(NOW - timedelta(days=i % 700))}), n)
    _stage(engine, "contact", lambda i: (f"c{i}", {"crm_id": f"c{i}", "full_name": "张三", "company_id": str(i % n)}),
           3 * n)
    _stage(engine, "contact_source", lambda i: (f"c{i}", {"contact_id": f"c{i}", "company_id": str(i % n),
                                                         "source": "OFFLINE", "first_touch_campaign_id": f"k{i % 20}"}),
           3 * n)
    _stage(engine, "campaign", lambda i: (f"k{i}", {"campaign_id": f"k{i}", "name": f"活动{i}"}), 20)
    _stage(engine, "marketing_event", lambda i: (f"e{i}", {"event_id": f"e{i}", "name": f"会{i}",
                                                          "campaign_id": f"k{i % 20}",
                                                          "start_at": _iso(NOW - timedelta(days=i))}), 200)
    _stage(engine, "event_participation", lambda i: (f"p{i}", {
        "participation_id": f"p{i}", "event_id": f"e{i % 200}", "contact_id": f"c{i % (3 * n)}", "state": "attended",
        "occurred_at": _iso(NOW - timedelta(days=i % 500))}), n)
    _stage(engine, "deal", lambda i: (f"d{i}", {
        "crm_id": f"d{i}", "company_id": str(i % n), "owner_id": str(700 + i % 40),
        "stage": rng.choice(["lead", "qualified", "won", "lost"]), "created_at": _iso(NOW - timedelta(days=i % 600)),
        "close_date": (NOW - timedelta(days=i % 300)).date().isoformat()}), 2 * n)
    _stage(engine, "feedback_submission", lambda i: (f"f{i}", {
        "response_id": f"f{i}", "survey_type": "CSAT", "value": 1 + i % 5, "contact_id": f"c{i % (3 * n)}",
        "company_id": str(i % n), "submitted_at": _iso(NOW - timedelta(days=i % 700))}), n)


def timed(label: str, call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = call()
    print(f"{label}: {time.perf_counter() - started:.2f} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=20_000)
    n = parser.parse_args().companies
    path = ROOT / "data" / "bench" / f"journey_{n}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.exists()
    url = f"sqlite:///{path}"
    hub_engine.upgrade(url)
    engine = hub_engine.get_engine(url)
    if fresh:
        timed(f"staged {n} companies, {3 * n} contacts and sources, {n} participations, {2 * n} deals", lambda: stage(engine, n))
        with engine.begin() as conn:
            timed("record_stage_changes, first pass", lambda: marts.record_stage_changes(conn, now=NOW))
    with engine.begin() as conn:
        timed("record_stage_changes, nothing new", lambda: marts.record_stage_changes(conn, now=NOW))
    policy = permissions.load()
    with engine.connect() as conn:
        facts = timed("funnel facts", lambda: marts.funnel_facts(conn))
        timed("funnel per campaign", lambda: funnel.funnel(facts.touches, facts.deals))
        timed("people × satisfaction facts", lambda: marts.people_facts(conn))
        timed("one customer's timeline", lambda: views.customer_timeline(
            conn, str(n // 2), marts.Projection(policy, "management"), now=NOW,
            may_see_document=views.document_rule(policy, "management")))
        timed("customer search", lambda: marts.find_customers(conn, "公司123", owners=None, by_uscc=True))


if __name__ == "__main__":
    main()
