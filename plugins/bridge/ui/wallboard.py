"""大屏: the figures of the office wallboard (``/bridge/wallboard``, routes in :mod:`bridge.ui.routes.wallboard`).

The figures are the daily report's marts (:mod:`bridge.report.marts`) over
the hub, read with the permission policy of the wall's audience
(``audiences.report.wallboard`` → role ``wallboard``, 大屏): every value is
projected by ``Policy.project`` for that role, whoever looks, and only
aggregates leave this module (totals, counts, ages, customer and city names;
never a person, a phone or an e-mail). "Today" and the month are Asia/Shanghai
business dates; the report periods of tomorrow's report end today, so the
same period arithmetic serves both.

The JSON is computed at most once per ``cache_seconds`` for every screen
together (one hub read however many TVs are on), in the background: a screen
never waits for the hub except on the very first request.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, Engine

from bridge import settings
from bridge.hub import store

log = logging.getLogger(__name__)

TZ = ZoneInfo("Asia/Shanghai")
AUDIENCE = "wallboard"  # audiences.report.<AUDIENCE> in include/permissions.yaml
MIN_REFRESH, MAX_REFRESH = 2, 3600

# The approval forms whose pending instances the wall counts, in the panel's order.
APPROVAL_FORMS = (
    "project_initiation",
    "expense_claim",
    "travel_request",
    "visit_plan",
    "contract_amount_notice",
)

# What the wall reads of each entity (the policy may hide more; the marts then leave a panel empty).
WALLBOARD_FIELDS: dict[str, tuple[str, ...]] = {
    "deal": ("crm_id", "stage", "contract_amount", "close_date", "company_id", "created_at"),
    "company": ("crm_id", "name", "city"),
    "project_initiation": ("approval_status", "created_at", "decided_at"),
    "expense_claim": ("approval_status", "created_at", "decided_at"),
    "travel_request": ("approval_status", "created_at", "decided_at"),
    "visit_plan": ("approval_status", "created_at", "decided_at"),
    "contract_amount_notice": ("approval_status", "created_at"),
}


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class WallboardSettings:
    """``wallboard:`` of include/settings.yaml."""

    monthly_target_cny: float = 0.0
    daily_target_cny: float | None = None  # None: the monthly target over the month's Mon–Fri days
    refresh_seconds: int = 60
    cache_seconds: int = 60
    top_n: int = 8
    title: str = "经营大屏"

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any] | None) -> WallboardSettings:
        raw = raw or {}
        unknown = set(raw) - {
            "monthly_target_cny",
            "daily_target_cny",
            "refresh_seconds",
            "cache_seconds",
            "top_n",
            "title",
        }
        if unknown:
            raise settings.SettingsError(
                f"include/settings.yaml wallboard: 未知的键 {', '.join(sorted(unknown))}；允许 monthly_target_cny、"
                "daily_target_cny、refresh_seconds、cache_seconds、top_n、title。"
            )
        try:
            daily = raw.get("daily_target_cny")
            out = cls(
                monthly_target_cny=float(raw.get("monthly_target_cny") or 0),
                daily_target_cny=None if daily in (None, "") else float(daily),
                refresh_seconds=int(raw.get("refresh_seconds", 60)),
                cache_seconds=int(raw.get("cache_seconds", 60)),
                top_n=int(raw.get("top_n", 8)),
                title=str(raw.get("title") or "经营大屏"),
            )
        except (TypeError, ValueError) as exc:
            raise settings.SettingsError(
                f"include/settings.yaml wallboard: 数值无效（{exc}）；目标金额填元（如 3000000），"
                "refresh_seconds、cache_seconds、top_n 填整数。"
            ) from exc
        if out.monthly_target_cny < 0 or (out.daily_target_cny or 0) < 0:
            raise settings.SettingsError("include/settings.yaml wallboard: 目标金额不能为负数。")
        if not MIN_REFRESH <= out.refresh_seconds <= MAX_REFRESH or not 1 <= out.top_n <= 20:
            raise settings.SettingsError(
                f"include/settings.yaml wallboard: refresh_seconds 应在 {MIN_REFRESH}–{MAX_REFRESH} 之间，"
                "top_n 应在 1–20 之间。"
            )
        return out


def load_settings() -> WallboardSettings:
    return WallboardSettings.from_settings(settings.cached().get("wallboard"))


def daily_target(cfg: WallboardSettings, day: date) -> float:
    """The day's target: ``daily_target_cny``, else the monthly target over the month's Monday–Friday days."""
    if cfg.daily_target_cny is not None:
        return cfg.daily_target_cny
    days = calendar.monthrange(day.year, day.month)[1]
    workdays = sum(1 for d in range(1, days + 1) if date(day.year, day.month, d).weekday() < 5)
    return round(cfg.monthly_target_cny / workdays, 2) if workdays else 0.0


# ---------------------------------------------------------------- figures


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: _plain(v) for k, v in row.items()})
    return out


def _plain(value: Any) -> Any:
    """JSON-safe scalars: NaN → None, numpy → Python, dates → ISO text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return value.item()
    return value


def regions(data: Any, periods: Any, top_n: int) -> list[dict[str, Any]]:
    """Won amount this year by the customer's city (赢单金额按客户所在城市), largest first."""
    from bridge.report import marts

    deals = data.frames["deal"]
    companies = data.frames["company"]
    for entity, frame, needed in (
        ("deal", deals, ("stage", "contract_amount", "close_date", "company_id")),
        ("company", companies, ("crm_id", "city")),
    ):
        missing = [f for f in needed if f not in frame.columns]
        if missing:
            raise marts.HiddenFields(entity, missing)
    won = deals[deals["stage"].isin(marts.WON_STAGES) & marts.within(deals["close_date"], periods.ytd)]
    city_of = {
        str(k): str(v)
        for k, v in zip(companies["crm_id"], companies["city"], strict=True)
        if pd.notna(k) and pd.notna(v) and str(v).strip()
    }
    keys = (
        won["company_id"]
        .astype(object)
        .map(lambda c: city_of.get(str(c), "（未填城市）") if pd.notna(c) else "（未关联客户）")
    )
    grouped = (
        pd.DataFrame({"city": keys.to_numpy(), "cents": won["contract_amount"].fillna(0.0).to_numpy()})
        .groupby("city", sort=False)["cents"]
        .agg(["sum", "size"])
        .reset_index()
    )
    grouped = grouped[grouped["sum"] > 0].sort_values(["sum", "city"], ascending=[False, True], kind="stable")
    return [
        {"city": str(r.city), "won_amount": round(float(r.sum) / 100, 2), "won_deals": int(r.size)}
        for r in grouped.head(top_n).itertuples(index=False)
    ]


def pending_ages(data: Any, labels: Any, now: datetime) -> list[dict[str, Any]]:
    """Per approval form: how many are pending and how long the oldest has waited (days)."""
    from bridge.report import marts

    out = []
    for entity in APPROVAL_FORMS:
        frame = data.frames.get(entity)
        if frame is None or not {"approval_status", "created_at"} <= set(frame.columns):
            continue
        pending = frame[(frame["approval_status"] == "PENDING").to_numpy()]
        created = pending["created_at"].dropna()
        oldest = created.min() if len(created) else None
        old = int((created < pd.Timestamp(now - timedelta(days=marts.PENDING_ALERT_DAYS))).sum())
        out.append(
            {
                "form": labels.entities.get(entity, entity),
                "entity": entity,
                "pending": len(pending),
                "pending_old": old,
                "oldest_days": None
                if oldest is None
                else round((now - oldest.to_pydatetime()).total_seconds() / 86400, 1),
            }
        )
    return out


def sync_health(conn: Connection, data: Any) -> dict[str, Any]:
    """Per direction: last run (status, time), last success, lag as the daily report defines it; open quarantine."""
    from bridge import runkinds
    from bridge.report import marts
    from bridge.ui import queries

    status, _writes, _streams, _head = marts.sync_tables(data)
    by_label = {row["direction"]: row for row in status.frame.to_dict(orient="records")}
    latest = queries.latest_run_per_kind(conn)
    directions = []
    for direction, kind in runkinds.SYNC_BY_DIRECTION.items():
        label = store.DIRECTION_LABELS.get(direction, direction)
        row = by_label.get(label, {})
        run = latest.get(kind)
        directions.append(
            {
                "direction": direction,
                "label": label,
                "last_run_status": run.status if run else None,
                "last_run_at": _plain(run.finished_at or run.started_at) if run else None,
                "last_success_at": _plain(queries.last_success(conn, kind)),
                "lag_minutes": _plain(row.get("lag")),
                "runs_24h": int(row.get("runs") or 0),
                "failed_24h": int(row.get("failed") or 0),
            }
        )
    backlog, open_count = marts.quarantine_table(data)
    return {
        "directions": directions,
        "quarantine_open": open_count,
        "quarantine_reasons": [
            {"reason": r["reason"], "open": int(r["open"])} for r in backlog.frame.to_dict(orient="records")
        ][:5],
    }


def wall_periods(today: date) -> Any:
    """The report periods ending today, with 今日 as the day (the wall counts today, working day or not)."""
    from dataclasses import replace

    from bridge.report.periods import Span, report_periods

    periods = report_periods(today + timedelta(days=1))  # tomorrow's report: month, year, 30 days end today
    yesterday = today - timedelta(days=1)
    return replace(periods, day=Span(today, today, "今日"), day_prev=Span(yesterday, yesterday, "昨日"))


def compute_figures(
    engine: Engine,
    *,
    now: datetime | None = None,
    cfg: WallboardSettings | None = None,
    policy: Any = None,
    dictionary: Any = None,
) -> dict[str, Any]:
    """Every figure of the wall, as JSON-ready data, through the policy of the wall's role."""
    from bridge import dictionary as bridge_dictionary
    from bridge import permissions
    from bridge.report import marts

    now = now or datetime.now(UTC)
    cfg = cfg or load_settings()
    policy = policy or permissions.load()
    dictionary = dictionary or policy.dictionary or bridge_dictionary.load()
    role = policy.audience("report", AUDIENCE)
    today = now.astimezone(TZ).date()
    periods = wall_periods(today)
    data, sync = _read(engine, dictionary, policy, role, now)
    labels = marts.Labels.from_dictionary(dictionary)
    names = marts.Names(owners={}, customers=_customer_names(data.frames["company"]))
    panels = _Panels(role)
    _new_t, _won_t, head = panels.get(
        "sales", lambda: marts.deal_period_tables(data, periods), (None, None, {})
    )
    trend = panels.get("trend", lambda: marts.won_trend(data, periods), pd.DataFrame())
    stage_t = panels.get("funnel", lambda: marts.pipeline_by_stage(data, labels), None)
    top_t = panels.get("customers", lambda: marts.top_customers(data, periods, names, cfg.top_n), None)
    _health_t, health_trend, health_head = marts.health_tables(data, periods, labels)
    health_trend = health_trend[health_trend["day"] <= today]
    by_city = panels.get("regions", lambda: regions(data, periods, cfg.top_n), [])
    return {
        "generated_at": now.isoformat(),
        "today": today.isoformat(),
        "month": f"{today.year}年{today.month}月",
        "role": role,
        "role_label": data.role_label,
        "title": cfg.title,
        "refresh_seconds": cfg.refresh_seconds,
        "sales": _sales(head, cfg, today),
        "trend": _records(trend),
        "funnel": _funnel(stage_t),
        "top_customers": _top_customers(top_t),
        "regions": by_city,
        "approvals": pending_ages(data, labels, now),
        "sync": sync,
        "health": {
            "score": health_head.get("health_score"),
            "day": health_head.get("health_day"),
            "trend": _records(health_trend),
        },
        "hidden_panels": panels.hidden,
    }


def _read(
    engine: Engine, dictionary: Any, policy: Any, role: str, now: datetime
) -> tuple[Any, dict[str, Any]]:
    """The report data of the wall's fields through ``role``'s policy, and the sync health, in one connection."""
    from bridge.report import load

    with engine.connect() as conn:
        data = load.load_report_data(
            conn,
            dictionary,
            policy,
            role=role,
            built_at=now,
            health_until=now.astimezone(TZ).date(),
            reading=load.ReportReading(fields=WALLBOARD_FIELDS),
        )
        data.role_label = policy.roles.get(role, role)
        sync = sync_health(conn, data)
    return data, sync


class _Panels:
    """The wall's panels, made one by one: a panel needing fields hidden from the wall's role stays empty."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.hidden: list[str] = []  # the panels left empty, for the page to say so

    def get(self, name: str, make: Callable[[], Any], empty: Any) -> Any:
        from bridge.report import marts

        try:
            return make()
        except marts.HiddenFields as exc:
            self.hidden.append(name)
            log.info("wallboard: panel %s needs %s fields hidden from %s", name, exc.entity, self.role)
            return empty


def _top_customers(top_t: Any) -> list[dict[str, Any]]:
    """The top customers by won amount (empty when the policy hides what the panel needs)."""
    if top_t is None:
        return []
    return [
        {"customer": r["customer"], "won_amount": r["won_amount"], "won_deals": r["won_deals"]}
        for r in _records(top_t.frame)
    ]


def _customer_names(companies: pd.DataFrame) -> dict[str, str]:
    """Customer id → name, for the top-customers panel (empty when the policy hides the names)."""
    if not {"crm_id", "name"} <= set(companies.columns):
        return {}
    return {
        str(k): str(v)
        for k, v in zip(companies["crm_id"], companies["name"], strict=True)
        if pd.notna(k) and pd.notna(v)
    }


def _sales(head: Mapping[str, Any], cfg: WallboardSettings, today: date) -> dict[str, Any]:
    """The sales panel: won and new deals today, this month and this year, against the targets."""
    return {
        "won_amount_today": head.get("won_amount_day"),
        "won_count_today": head.get("won_count_day"),
        "won_amount_month": head.get("won_amount_mtd"),
        "won_count_month": head.get("won_count_mtd"),
        "won_amount_year": head.get("won_amount_ytd"),
        "new_deals_today": head.get("new_deals_day"),
        "new_deals_month": head.get("new_deals_mtd"),
        "target_today": daily_target(cfg, today),
        "target_month": cfg.monthly_target_cny,
    }


def _funnel(stage_t: Any) -> list[dict[str, Any]]:
    """The pipeline by stage (empty when the policy hides the deals' stages or amounts)."""
    from bridge.report import marts

    if stage_t is None:
        return []
    return [
        {
            "stage": row["stage"],
            "code": row["stage_code"],
            "deals": int(row["deals"]),
            "amount": float(row["amount"]),
            "open": row["stage_code"] not in marts.CLOSED_STAGES,
        }
        for row in stage_t.frame.to_dict(orient="records")
    ]


class FiguresCache:
    """The wall's figures for every screen together: computed at most once per ``ttl`` seconds.

    A large hub takes seconds to read (about 13 s for 200,000 deals on SQLite),
    so a stale value is served at once while one background thread computes the
    next (the page shows when its figures were computed); only the very first
    request waits.
    """

    def __init__(self, compute: Callable[[Engine], dict[str, Any]] | None = None) -> None:
        self._compute = compute or (lambda engine: compute_figures(engine))
        self._lock = threading.Lock()
        self._first = threading.Lock()  # one synchronous computation when nothing is cached
        self._value: tuple[float, str, dict[str, Any]] | None = None
        self._refreshing = False

    def _store(self, key: str, engine: Engine) -> dict[str, Any]:
        started = time.monotonic()
        figures = self._compute(engine)
        took = time.monotonic() - started
        if took > 5:
            log.warning(
                "wallboard: figures took %.1f s to compute; consider a larger wallboard.cache_seconds", took
            )
        with self._lock:
            self._value = (time.monotonic(), key, figures)
        return figures

    def _refresh(self, key: str, engine: Engine) -> None:
        try:
            self._store(key, engine)
        except Exception:  # the screens keep the last figures; the next request tries again
            log.exception("wallboard: figures could not be refreshed")
        finally:
            with self._lock:
                self._refreshing = False

    def get(self, engine: Engine, ttl: float) -> dict[str, Any]:
        key = str(engine.url)
        with self._lock:
            value = self._value
            if value is not None and value[1] == key:
                if time.monotonic() - value[0] >= ttl and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(
                        target=self._refresh, args=(key, engine), name="wallboard-figures", daemon=True
                    ).start()
                return value[2]
        with self._first:
            with self._lock:
                value = self._value
            if value is not None and value[1] == key:
                return value[2]
            return self._store(key, engine)
