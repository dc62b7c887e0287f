"""大屏: kiosk tokens, the data endpoint's figures, the policy of the wall, and the kiosk's reach.

The hub is filled by the bridge's own writers, as the report tests do: the
simulated company's CRM objects mapped with ``Dictionary.from_crm`` and OA
instance details read back from a real OA simulator (``Dictionary.from_oa``),
staged with ``store.upsert_snapshots``; sync runs, watermarks and quarantine
through ``bridge.hub.store``; data-health scores through
``bridge.quality.scores.save_day``. The expected figures are computed here
independently, from the staged snapshot payloads with plain Python (no pandas,
no marts).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from tests.ui.conftest import CSRF_SECRET, FakeAuth, mounted
from tests.ui.page_paths import NAV_PAGES, WALLBOARD_LOGIN_PAGES

from bridge import dictionary as bridge_dictionary
from bridge import permissions, runkinds
from bridge.context import RunContext
from bridge.dictionary import Dictionary
from bridge.hub import engine as hub_engine
from bridge.hub import store
from bridge.hub.schema import kiosk_token, snapshot
from bridge.staging import snapshot_row
from bridge.ui import kiosk, wallboard
from bridge.ui.app import UiConfig
from sandbox.common.world import APPROVAL_CODES, World, wire_properties

TZ = ZoneInfo("Asia/Shanghai")
SEED = 777
KEY = b"wallboard-test-key-".ljust(32, b"k")  # the app's key in these tests (signing_key is replaced)
EXTRA_COMPANY = "39990000001"


# ---------------------------------------------------------------- a hub filled by the real writers


@dataclass
class WallHub:
    url: str
    engine: Engine
    world: World
    dictionary: Dictionary
    now: datetime


def _stage_crm(d: Dictionary, world: World) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {"company": [], "deal": []}
    for entity, objects in (("company", world.iter_companies()), ("deal", world.iter_deals())):
        for obj in objects:
            row = snapshot_row(
                d,
                entity,
                d.from_crm(entity, {"id": obj.id, "properties": wire_properties(obj)}, obj.associations),
            )
            if row is not None:
                rows[entity].append(row)
    return rows


def _oa_details(tmp: Path, world: World) -> list[dict[str, Any]]:
    from sandbox.oa.testing import running_oa

    with running_oa(tmp, "--rate-limits", "off", max_lifetime=300) as (_sim, client):
        client.admin(
            "POST",
            "/seed",
            {
                "seed": world.seed,
                "companies": world.n_companies,
                "deals": world.n_deals,
                "oa_instances": world.n_oa_instances,
                "now_ms": world.now_ms,
            },
        )
        details: list[dict[str, Any]] = []
        while True:
            page = client.admin("GET", "/instances", params={"offset": len(details), "limit": 1000})
            details += page["items"]
            if not page["items"] or len(details) >= page["total"]:
                return details


def won_deal(
    d: Dictionary, deal_id: str, amount: str, close: date, company_id: str, *, created: datetime
) -> Any:
    """A won deal as the CRM sends it, mapped and staged the way the sync stages it."""
    stamp = created.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    wire = {
        "id": deal_id,
        "properties": {
            "dealname": f"大屏测试 {deal_id}",
            "dealstage": "closedwon",
            "amount": amount,
            "closedate": f"{close.isoformat()}T00:00:00.000Z",
            "hubspot_owner_id": "70000001",
            "createdate": stamp,
            "hs_lastmodifieddate": stamp,
        },
    }
    return snapshot_row(d, "deal", d.from_crm("deal", wire, {"companies": [company_id]}))


def add_deal(hub: WallHub, deal_id: str, amount: str, close: date, company_id: str = EXTRA_COMPANY) -> None:
    row = won_deal(hub.dictionary, deal_id, amount, close, company_id, created=datetime.now(UTC))
    with hub.engine.begin() as conn:
        store.upsert_snapshots(conn, "crm", "deal", [row])


def _health_history(conn: Any, today: date) -> None:
    from bridge.quality.checks import Check
    from bridge.quality.results import CheckOutcome
    from bridge.quality.scores import compute_scores, save_day

    checks = [
        Check(
            check_id=f"deal.{f}.not_null",
            suite="dictionary.deal",
            frame="deal",
            entity="deal",
            field=f,
            kind="not_null",
            department="sales",
            column=f,
            expectation="ExpectColumnValuesToNotBeNull",
        )
        for f in ("stage", "contract_amount")
    ]
    for back in range(20, -1, -1):
        day = today - timedelta(days=back)
        outcomes = [
            CheckOutcome(check=c, success=(back + i) % 4 != 0, evaluated=400, failed=((back + i) % 4) * 9)
            for i, c in enumerate(checks)
        ]
        save_day(
            conn,
            day,
            f"scheduled__{day}",
            outcomes,
            compute_scores(outcomes, ["deal"]),
            at=datetime.combine(day, datetime.min.time(), tzinfo=TZ).astimezone(UTC) + timedelta(hours=7),
        )


def build_wall_hub(folder: Path, now: datetime | None = None) -> WallHub:
    """Migrate a SQLite hub in ``folder`` and fill it the way the DAGs do (see the module docstring)."""
    now = now or datetime.now(UTC)
    url = f"sqlite:///{folder / 'hub.sqlite'}"
    hub_engine.upgrade(url)
    engine = hub_engine.get_engine(url)
    d = bridge_dictionary.load()
    world = World(
        seed=SEED,
        companies=60,
        deals=900,
        oa_instances=500,
        now_ms=int(now.timestamp() * 1000),
        history_days=400,
    )
    crm = _stage_crm(d, world)
    form_of = {code: name for name, code in APPROVAL_CODES.items()}
    oa: dict[str, list[Any]] = {}
    for detail in _oa_details(folder / "oa", world):
        entity = form_of[detail["approval_code"]]
        row = snapshot_row(d, entity, d.from_oa(entity, detail))
        if row is not None:
            oa.setdefault(entity, []).append(row)
    company = {
        "id": EXTRA_COMPANY,
        "properties": {
            "name": "杭州大屏测试科技有限公司",
            "uscc": "",
            "lifecyclestage": "customer",
            "city": "杭州",
            "hubspot_owner_id": "70000001",
            "createdate": "2026-01-05T02:00:00.000Z",
            "hs_lastmodifieddate": "2026-01-05T02:00:00.000Z",
        },
    }
    crm["company"].append(snapshot_row(d, "company", d.from_crm("company", company, {})))
    today = now.astimezone(TZ).date()
    crm["deal"].append(
        won_deal(d, "59990000001", "368000.00", today, EXTRA_COMPANY, created=now - timedelta(hours=1))
    )
    ctx = RunContext(
        dag_id="crm_to_oa_sync",
        run_id="scheduled__wall",
        task_id="load",
        try_number=1,
        principal="bridge-service",
    )
    with engine.begin() as conn:
        for entity, rows in crm.items():
            store.upsert_snapshots(conn, "crm", entity, rows, now=now)
        for entity, rows in oa.items():
            store.upsert_snapshots(conn, "oa", entity, rows, now=now)
        for kind, minutes_ago, status in (
            (runkinds.CRM_TO_OA, 65, "success"),
            (runkinds.CRM_TO_OA, 5, "success"),
            (runkinds.OA_TO_CRM, 12, "failed"),
            (runkinds.OA_TO_CRM, 42, "success"),
        ):
            pk = store.start_run(conn, ctx, kind, now=now - timedelta(minutes=minutes_ago + 1))
            store.finish_run(
                conn, pk, status, {"read": 40, "updated": 3}, now=now - timedelta(minutes=minutes_ago)
            )
        for stream, minutes_ago in (("crm.deal", 6), ("crm.company", 9), ("oa.expense_claim.created", 44)):
            store.set_watermark(
                conn,
                stream,
                int((now - timedelta(minutes=minutes_ago)).timestamp() * 1000),
                "scheduled__wall",
            )
        for n, (reason, entity, sid) in enumerate(
            [
                ("invalid_format", "contact", "C-1"),
                ("invalid_format", "contact", "C-2"),
                ("missing_customer_link", "expense_claim", "I-1"),
            ]
        ):
            store.quarantine_record(
                conn,
                RunContext.local(principal="bridge-service"),
                store.QuarantineItem(
                    "crm_to_oa" if entity == "contact" else "oa_to_crm",
                    "crm" if entity == "contact" else "oa",
                    entity,
                    sid,
                    reason,
                    "测试用隔离记录",
                    payload={"mobile": "13812345678", "email": "zhang.san@example.com"},
                ),
                now=now - timedelta(days=n),
            )
        _health_history(conn, today)
    return WallHub(url=url, engine=engine, world=world, dictionary=d, now=now)


@pytest.fixture(scope="session")
def wall_hub_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WallHub]:
    hub = build_wall_hub(tmp_path_factory.mktemp("wall_hub"))
    with hub.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    hub.engine.dispose()
    return hub


@pytest.fixture
def wall_hub(wall_hub_template: WallHub, tmp_path: Path) -> Iterator[WallHub]:
    """A private copy of the filled hub (tests add deals and tokens to it)."""
    target = tmp_path / "hub.sqlite"
    shutil.copyfile(Path(wall_hub_template.url.removeprefix("sqlite:///")), target)
    url = f"sqlite:///{target}"
    hub = WallHub(
        url=url,
        engine=hub_engine.get_engine(url),
        world=wall_hub_template.world,
        dictionary=wall_hub_template.dictionary,
        now=wall_hub_template.now,
    )
    yield hub
    hub.engine.dispose()


@pytest.fixture
def wall_client(wall_hub: WallHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(kiosk, "signing_key", lambda create=False: KEY)
    auth = FakeAuth()
    config = UiConfig(
        authenticator=auth, csrf_secret=CSRF_SECRET, hub_url=wall_hub.url, data_dir=tmp_path / "data"
    )
    with TestClient(mounted(config), base_url="http://127.0.0.1:8080", follow_redirects=False) as c:
        c.auth_stub = auth  # type: ignore[attr-defined]
        yield c


# ---------------------------------------------------------------- independent expectations


def _payloads(engine: Engine, entity: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(snapshot.c.payload).where(snapshot.c.entity == entity, snapshot.c.deleted.is_(False))
        )
        return [dict(r.payload) for r in rows]


def expected(engine: Engine, today: date, now: datetime) -> dict[str, Any]:
    """The wall's figures from the snapshot payloads with plain Python."""
    deals = _payloads(engine, "deal")
    month_start = today.replace(day=1)

    def amount(p: dict[str, Any]) -> Decimal:
        return (
            Decimal(str(p["contract_amount"])) if p.get("contract_amount") not in (None, "") else Decimal(0)
        )

    won = [p for p in deals if p.get("stage") in ("won", "delivered") and p.get("close_date")]
    created_day = [
        datetime.fromisoformat(p["created_at"]).astimezone(TZ).date() for p in deals if p.get("created_at")
    ]
    pending = 0
    old = 0
    for entity in wallboard.APPROVAL_FORMS:
        for p in _payloads(engine, entity):
            if p.get("approval_status") == "PENDING":
                pending += 1
                if p.get("created_at") and datetime.fromisoformat(p["created_at"]) < now - timedelta(days=3):
                    old += 1
    open_stages = {"lead", "qualified", "proposal", "negotiation", "contract"}
    companies = {p["crm_id"]: p for p in _payloads(engine, "company")}
    by_company: dict[str, Decimal] = {}
    by_city: dict[str, Decimal] = {}
    for p in won:
        if not f"{today.year}-01-01" <= p["close_date"] <= today.isoformat():
            continue
        company = companies.get(p.get("company_id") or "", {})
        by_company[company.get("name") or "?"] = by_company.get(
            company.get("name") or "?", Decimal(0)
        ) + amount(p)
        city = company.get("city") or "（未填城市）"
        by_city[city] = by_city.get(city, Decimal(0)) + amount(p)
    top_n = wallboard.load_settings().top_n
    return {
        "top_customers": [
            (k, round(float(v), 2)) for k, v in sorted(by_company.items(), key=lambda kv: (-kv[1], kv[0]))
        ][:top_n],
        "regions": [
            (k, round(float(v), 2)) for k, v in sorted(by_city.items(), key=lambda kv: (-kv[1], kv[0]))
        ][:top_n],
        "won_amount_today": float(sum(amount(p) for p in won if p["close_date"] == today.isoformat())),
        "won_count_today": sum(1 for p in won if p["close_date"] == today.isoformat()),
        "won_amount_month": float(
            sum(amount(p) for p in won if month_start.isoformat() <= p["close_date"] <= today.isoformat())
        ),
        "new_deals_today": sum(1 for day in created_day if day == today),
        "new_deals_month": sum(1 for day in created_day if month_start <= day <= today),
        "pending": pending,
        "pending_old": old,
        "open_by_stage": {s: sum(1 for p in deals if p.get("stage") == s) for s in open_stages},
    }


# ---------------------------------------------------------------- tokens


def test_token_create_verify_revoke(wall_hub: WallHub) -> None:
    with wall_hub.engine.begin() as conn:
        token, link = kiosk.create(conn, KEY, "admin", label="三楼销售区")
    assert re.fullmatch(kiosk.TOKEN_PATTERN, token)
    assert token.startswith(link.token_id + ".")
    with wall_hub.engine.connect() as conn:
        stored = conn.execute(select(kiosk_token)).one()
        assert stored.token_hash != token
        assert token not in str(tuple(stored))
        assert stored.created_by == "admin"
        assert stored.revoked_at is None
        assert kiosk.verify(conn, KEY, token) == link
        # the wrong key, a changed signature, a changed id, another scope: refused
        assert kiosk.verify(conn, b"k" * 32, token) is None
        assert kiosk.verify(conn, KEY, token[:-1] + ("a" if token[-1] != "a" else "b")) is None
        assert kiosk.verify(conn, KEY, ("a" if token[0] != "a" else "b") + token[1:]) is None
        assert kiosk.verify(conn, KEY, token, scope="reports") is None
        assert kiosk.verify(conn, KEY, "") is None
        assert kiosk.verify(conn, KEY, "x" * 2000) is None
    # a correctly signed token that was never stored (e.g. the row deleted): refused
    forged_id = "a" * 26
    forged = f"{forged_id}.{kiosk._signature(KEY, forged_id, kiosk.SCOPE)}"
    with wall_hub.engine.connect() as conn:
        assert kiosk.verify(conn, KEY, forged) is None
    with wall_hub.engine.begin() as conn:
        revoked = kiosk.revoke(conn, kiosk.token_id_of(token), "boss")
        again = kiosk.revoke(conn, link.token_id, "someone-else")
    assert revoked.revoked_by == "boss"
    assert again.revoked_by == "boss"
    assert again.revoked_at == revoked.revoked_at
    with wall_hub.engine.connect() as conn:
        assert kiosk.verify(conn, KEY, token) is None
        assert [lk.active for lk in kiosk.list_links(conn)] == [False]
        assert kiosk.list_links(conn, include_revoked=False) == []
    with wall_hub.engine.begin() as conn, pytest.raises(kiosk.KioskTokenNotFound):
        kiosk.revoke(conn, "nosuchid", "boss")


def test_signing_key_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(kiosk.KEY_ENV, raising=False)
    assert kiosk.signing_key() is None  # no key yet: nothing is made by a page view
    assert not (tmp_path / kiosk.KEY_FILE).exists()
    made = kiosk.signing_key(create=True)
    key_file = tmp_path / kiosk.KEY_FILE
    assert made is not None
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert kiosk.signing_key() == kiosk.signing_key(create=True) == made  # stable: links survive restarts
    monkeypatch.setenv(kiosk.KEY_ENV, "s" * 40)
    from_env = kiosk.signing_key()
    assert from_env is not None
    assert from_env != made  # the environment wins over the file
    monkeypatch.setenv(kiosk.KEY_ENV, "short")
    with pytest.raises(kiosk.KioskKeyMissing, match="too short"):
        kiosk.signing_key()
    monkeypatch.delenv(kiosk.KEY_ENV)
    key_file.write_text("tiny\n")
    with pytest.raises(kiosk.KioskKeyMissing, match="shorter than"):
        kiosk.signing_key()


# ---------------------------------------------------------------- figures


def test_figures_match_the_hub(wall_hub: WallHub) -> None:
    figures = wallboard.compute_figures(wall_hub.engine, now=wall_hub.now)
    today = wall_hub.now.astimezone(TZ).date()
    want = expected(wall_hub.engine, today, wall_hub.now)
    sales = figures["sales"]
    assert figures["today"] == today.isoformat()
    assert figures["role"] == "wallboard"
    assert sales["won_amount_today"] == pytest.approx(want["won_amount_today"])
    assert want["won_amount_today"] >= 368000
    assert sales["won_count_today"] == want["won_count_today"]
    assert sales["won_amount_month"] == pytest.approx(want["won_amount_month"])
    assert sales["new_deals_today"] == want["new_deals_today"]
    assert sales["new_deals_month"] == want["new_deals_month"] > 0
    assert sales["target_month"] == wallboard.load_settings().monthly_target_cny
    assert sum(a["pending"] for a in figures["approvals"]) == want["pending"] > 0
    assert sum(a["pending_old"] for a in figures["approvals"]) == want["pending_old"]
    funnel = {r["code"]: r["deals"] for r in figures["funnel"] if r["open"]}
    assert {k: v for k, v in funnel.items() if k in want["open_by_stage"]} == want["open_by_stage"]
    # the 30-day trend ends today and holds today's won amount
    assert figures["trend"][-1]["day"] == today.isoformat()
    assert figures["trend"][-1]["won_amount"] == pytest.approx(want["won_amount_today"])
    # sync: last run per direction from the run summaries; the lag as the daily report's marts define it
    sync = {r["direction"]: r for r in figures["sync"]["directions"]}
    assert sync["crm_to_oa"]["last_run_status"] == "success"
    assert sync["oa_to_crm"]["last_run_status"] == "failed"
    assert datetime.fromisoformat(sync["crm_to_oa"]["last_run_at"]) == wall_hub.now - timedelta(minutes=5)
    assert datetime.fromisoformat(sync["oa_to_crm"]["last_success_at"]) == wall_hub.now - timedelta(
        minutes=42
    )
    assert sync["oa_to_crm"]["failed_24h"] == 1
    assert sync["crm_to_oa"]["runs_24h"] == 2
    report_sync = _report_sync_headline(wall_hub)
    for direction in ("crm_to_oa", "oa_to_crm"):
        assert sync[direction]["lag_minutes"] == report_sync[f"sync_lag_minutes_{direction}"]
    assert sync["oa_to_crm"]["lag_minutes"] >= 42 - 0.1
    assert figures["sync"]["quarantine_open"] == 3
    # data health: today's overall score as save_day stored it, with a trend
    with wall_hub.engine.connect() as conn:
        from bridge.quality import latest_scores

        overall = next(s for s in latest_scores(conn, day=today) if s.scope_type == "overall")
    assert figures["health"]["score"] == pytest.approx(round(overall.score, 1))
    assert len([r for r in figures["health"]["trend"] if r["score"] is not None]) == 21
    # top customers and regions (this year's won amount by customer, by the customer's city)
    assert [(r["customer"], round(r["won_amount"], 2)) for r in figures["top_customers"]] == want[
        "top_customers"
    ]
    assert [(r["city"], round(r["won_amount"], 2)) for r in figures["regions"]] == want["regions"]
    assert len(figures["regions"]) >= 3


def test_figures_cache_serves_stale_figures_while_one_thread_recomputes() -> None:
    import threading

    from sqlalchemy import create_engine

    calls: list[int] = []
    release = threading.Event()

    def compute(engine: Engine) -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 1:
            assert release.wait(10)
        return {"n": len(calls)}

    cache = wallboard.FiguresCache(compute)
    engine = create_engine("sqlite://")
    assert cache.get(engine, ttl=60) == {"n": 1}  # the first request computes
    assert cache.get(engine, ttl=60) == {"n": 1}
    assert len(calls) == 1  # fresh: no recomputation
    # stale: served at once, one background computation however many screens ask
    for _ in range(5):
        assert cache.get(engine, ttl=0) == {"n": 1}
    release.set()
    for _ in range(100):
        if cache.get(engine, ttl=60) == {"n": 2}:
            break
        threading.Event().wait(0.05)
    assert cache.get(engine, ttl=60) == {"n": 2}
    assert len(calls) == 2


def _report_sync_headline(hub: WallHub) -> dict[str, Any]:
    """The daily report's own sync figures at the same instant (its loader and marts, management's view)."""
    from bridge.report import load, marts

    policy = permissions.load()
    with hub.engine.connect() as conn:
        data = load.load_report_data(
            conn,
            hub.dictionary,
            policy,
            role="management",
            built_at=hub.now,
            health_until=hub.now.date(),
            reading=load.ReportReading(fields={"deal": ("crm_id",), "company": ("crm_id",)}),
        )
    return marts.sync_tables(data)[3]


def test_targets_and_settings() -> None:
    cfg = wallboard.WallboardSettings.from_settings({"monthly_target_cny": 2_100_000})
    assert wallboard.daily_target(cfg, date(2026, 12, 7)) == pytest.approx(2_100_000 / 23)  # 23 Mon–Fri days
    fixed = wallboard.WallboardSettings.from_settings({"monthly_target_cny": 1, "daily_target_cny": 5000})
    assert wallboard.daily_target(fixed, date(2026, 12, 7)) == 5000
    for bad in (
        {"monthly_target_cny": "三百万"},
        {"refresh_seconds": 1},
        {"top_n": 0},
        {"monthly_target": 1},
        {"monthly_target_cny": -5},
    ):
        with pytest.raises(Exception, match="wallboard"):
            wallboard.WallboardSettings.from_settings(bad)


# ---------------------------------------------------------------- the data endpoint and its policy


PERSONAL = (re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"), re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"))


def test_data_endpoint_figures_and_no_personal_data(wall_client: TestClient, wall_hub: WallHub) -> None:
    r = wall_client.get("/bridge/wallboard/data")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    data = r.json()
    now = datetime.fromisoformat(data["generated_at"])
    want = expected(wall_hub.engine, now.astimezone(TZ).date(), now)
    assert data["sales"]["won_amount_month"] == pytest.approx(want["won_amount_month"])
    assert data["sales"]["new_deals_month"] == want["new_deals_month"]
    text = r.text
    for pattern in PERSONAL:
        assert not pattern.search(text), pattern.pattern
    people = {e.name for e in wall_hub.world.employees}
    assert people
    assert not [name for name in people if name in text]
    deal_names = [p.get("deal_name") for p in _payloads(wall_hub.engine, "deal") if p.get("deal_name")]
    assert deal_names
    assert not [n for n in deal_names if len(n) > 3 and n in text]
    # what the wall's role may see, and no more
    policy = permissions.load()
    assert policy.audience("report", "wallboard") == "wallboard"
    assert not policy.allowed("deal", "owner_id", "wallboard")
    assert not policy.allowed("contact", "mobile", "wallboard")
    assert policy.visibility("contact", "wallboard") == {}


def test_panel_left_empty_when_policy_hides_its_fields(wall_hub: WallHub) -> None:
    policy = permissions.load()
    narrowed = permissions.Policy(
        path=policy.path,
        version=policy.version,
        roles=policy.roles,
        masks=policy.masks,
        visibility={**policy._visibility, ("deal", "wallboard"): {"stage": None, "created_at": None}},
        audiences=policy.audiences,
        dictionary=policy.dictionary,
    )
    figures = wallboard.compute_figures(wall_hub.engine, now=wall_hub.now, policy=narrowed)
    assert set(figures["hidden_panels"]) == {"sales", "trend", "funnel", "customers", "regions"}
    assert figures["sales"]["won_amount_month"] is None
    assert figures["top_customers"] == figures["regions"] == []
    assert figures["funnel"] == []
    assert figures["trend"] == []
    assert sum(a["pending"] for a in figures["approvals"]) > 0  # the other panels still show


# ---------------------------------------------------------------- kiosk reach


def _token(hub: WallHub) -> str:
    with hub.engine.begin() as conn:
        return kiosk.create(conn, KEY, "admin", label="测试")[0]


def test_wallboard_needs_login_without_a_token(wall_client: TestClient) -> None:
    wall_client.auth_stub.logout()  # type: ignore[attr-defined]
    assert wall_client.get("/bridge/wallboard").status_code == 401
    assert wall_client.get("/bridge/wallboard/data").status_code == 401
    wall_client.auth_stub.login("employee", False)  # type: ignore[attr-defined]
    page = wall_client.get("/bridge/wallboard?refresh=5")
    assert page.status_code == 200
    assert 'data-refresh="5"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    assert "https://" not in page.text
    assert "http://" not in page.text


def test_kiosk_link_works_without_login_and_is_refused_after_revocation(
    wall_client: TestClient, wall_hub: WallHub
) -> None:
    wall_client.auth_stub.logout()  # type: ignore[attr-defined]
    token = _token(wall_hub)
    page = wall_client.get(f"/bridge/wallboard/kiosk/{token}")
    assert page.status_code == 200
    assert f'data-source="/bridge/wallboard/kiosk/{token}/data"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    data = wall_client.get(f"/bridge/wallboard/kiosk/{token}/data")
    assert data.status_code == 200
    assert data.json()["role"] == "wallboard"
    for static in (
        "/bridge/static/wallboard.js",
        "/bridge/static/wallboard.css",
        "/bridge/static/vendor/echarts/echarts.min.js",
    ):
        assert wall_client.get(static).status_code == 200
    with wall_hub.engine.begin() as conn:
        kiosk.revoke(conn, kiosk.token_id_of(token), "admin")
    assert wall_client.get(f"/bridge/wallboard/kiosk/{token}").status_code == 403
    refused = wall_client.get(f"/bridge/wallboard/kiosk/{token}/data")
    assert refused.status_code == 403
    assert "sales" not in refused.text
    assert "收回" in refused.json()["error"]
    assert wall_client.get(f"/bridge/wallboard/kiosk/{token[:-2]}xx/data").status_code == 403


@pytest.mark.parametrize(
    "path", [*NAV_PAGES, "/bridge/quarantine/1", *WALLBOARD_LOGIN_PAGES, "/bridge/data-docs/index.html"]
)
def test_kiosk_token_opens_nothing_else(wall_client: TestClient, wall_hub: WallHub, path: str) -> None:
    wall_client.auth_stub.logout()  # type: ignore[attr-defined]
    token = _token(wall_hub)
    for attempt in ({"params": {"token": token}}, {"headers": {"Authorization": f"Bearer {token}"}}, {}):
        r = wall_client.get(path, **attempt)  # type: ignore[arg-type]
        assert r.status_code == 401, (path, attempt, r.status_code)
        wall_client.cookies.set("_token", token)  # the last round: the token as Airflow's session cookie
    wall_client.cookies.clear()
    # the token as a path prefix of another page, or with a page appended: not a route
    for sneaky in (
        f"/bridge/wallboard/kiosk/{token}/../../quarantine",
        f"/bridge/wallboard/kiosk/{token}/quarantine",
        f"/bridge/wallboard/kiosk/{token}/{path.removeprefix('/bridge/')}".rstrip("/") + "/x",
    ):
        r = wall_client.get(sneaky)
        assert r.status_code in (401, 404), (sneaky, r.status_code)
        assert "隔离" not in r.text or r.status_code != 200


# ---------------------------------------------------------------- bridge kiosk (the command line)


def test_cli_create_list_revoke(
    wall_client: TestClient,
    wall_hub: WallHub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bridge import cli

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main([*argv, "--hub-url", wall_hub.url])
        out = capsys.readouterr()
        return code, out.out + out.err

    code, out = run(
        "kiosk", "create", "--by", "admin", "--label", "三楼销售区", "--base-url", "http://127.0.0.1:8080/"
    )
    assert code == 0, out
    url = re.search(r"http://127\.0\.0\.1:8080/bridge/wallboard/kiosk/(\S+)", out)
    assert url, out
    token = url.group(1)
    wall_client.auth_stub.logout()  # type: ignore[attr-defined]
    assert (
        wall_client.get(f"/bridge/wallboard/kiosk/{token}/data").status_code == 200
    )  # the printed link works
    code, out = run("kiosk", "list")
    assert code == 0
    assert kiosk.token_id_of(token) in out
    assert "有效" in out
    assert "三楼销售区" in out
    assert token not in out
    code, out = run("kiosk", "revoke", url.group(0), "--by", "boss")  # the whole URL is accepted
    assert code == 0, out
    assert "已收回" in out
    assert wall_client.get(f"/bridge/wallboard/kiosk/{token}/data").status_code == 403
    assert run("kiosk", "list")[1].strip() == "没有有效的大屏链接。"
    code, out = run("kiosk", "list", "--all", "--json")
    assert code == 0
    assert '"revoked_by": "boss"' in out
    # a screen's link re-issued: the old one of that screen is revoked, other screens keep theirs
    code, first = run("kiosk", "create", "--by", "ops", "--label", "前台", "--json")
    code, other = run("kiosk", "create", "--by", "ops", "--label", "二楼", "--json")
    code, second = run("kiosk", "create", "--by", "ops", "--label", "前台", "--replace", "--json")
    assert code == 0
    import json

    first_id, other_id = json.loads(first)["token_id"], json.loads(other)["token_id"]
    assert json.loads(second)["revoked"] == [first_id]
    with wall_hub.engine.connect() as conn:
        active = {lk.token_id for lk in kiosk.list_links(conn, include_revoked=False)}
    assert active == {other_id, json.loads(second)["token_id"]}
    assert run("kiosk", "create", "--by", "ops", "--replace")[0] == 2  # --replace needs the screen's --label
    code, out = run("kiosk", "revoke", "nosuchid", "--by", "boss")
    assert code == 2
    assert "bridge kiosk list --all" in out
    # without a key, nothing is created (and the message says how to provide one)
    monkeypatch.setattr(
        kiosk,
        "signing_key",
        lambda create=False: (_ for _ in ()).throw(
            kiosk.KioskKeyMissing("no key to sign kiosk links: set BRIDGE_KIOSK_SECRET")
        ),
    )
    code, out = run("kiosk", "create", "--by", "admin")
    assert code == 2
    assert kiosk.KEY_ENV in out
    with wall_hub.engine.connect() as conn:
        assert len(kiosk.list_links(conn)) == 4


def test_make_airflow_prints_the_wallboard_and_a_demo_kiosk_link(
    wall_hub: WallHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make airflow``'s lines, through the real ``bridge kiosk create`` command; a restart replaces the demo link."""
    import os

    from sandbox.airflow_local import wallboard_lines

    env = {**os.environ, "BRIDGE_HUB_URL": wall_hub.url, "BRIDGE_DATA_DIR": str(tmp_path)}
    env.pop(kiosk.KEY_ENV, None)
    first = wallboard_lines(env, "http://127.0.0.1:8080")
    assert first[0].split()[2] == "http://127.0.0.1:8080/bridge/wallboard"
    url = first[1].split()[2]
    assert url.startswith("http://127.0.0.1:8080/bridge/wallboard/kiosk/")
    second = wallboard_lines(env, "http://127.0.0.1:8080")[1].split()[2]
    token, newer = url.rsplit("/", 1)[1], second.rsplit("/", 1)[1]
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(kiosk.KEY_ENV, raising=False)
    key = kiosk.signing_key()  # the key file the command made in the data folder
    assert key is not None
    with wall_hub.engine.connect() as conn:
        assert kiosk.verify(conn, key, newer) is not None
        assert kiosk.verify(conn, key, token) is None  # the previous demo link was revoked
