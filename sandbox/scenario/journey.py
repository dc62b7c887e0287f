"""The demo of issue 20's sources: the customer journey staged in the hub, and spreadsheets imported.

``scene(sims, demo_dir) -> list[str]`` (the lead wires it into the demo after the two sync scenes, which
staged the customers and contacts the journey resolves against; it needs the demo's hub at
``demo_dir / "hub.sqlite"``):

1. 客服部 drops ``满意度回访-线下.csv`` in the import folder (``demo_dir / "journey_import"``): two answers of a
   customer the CRM knows (by USCC and by name) and one of a customer it does not; 人力资源部 drops
   ``绩效-2024下半年.xlsx``: three sales people's ratings (by OA user id and by e-mail) and one of a person
   the OA does not know.
2. One pass of every ``journey_sync`` step, in this process, as the DAG runs them: campaigns, marketing events
   and participations, the contacts' original source, HubSpot's survey answers, Feishu's review results,
   and the two files — the good rows staged, the two bad ones quarantined with their row number.

The lines say what was staged per entity, what was quarantined and why, and where the files went.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

IMPORT_DIR = "journey_import"
TZ_SHANGHAI = ZoneInfo("Asia/Shanghai")


def _hub(demo_dir: Path) -> Any:
    from bridge.hub import engine

    return engine.ensure_schema(f"sqlite:///{demo_dir / 'hub.sqlite'}")


def _customers(hub: Any) -> list[dict[str, Any]]:
    from bridge.hub import store

    with hub.connect() as conn:
        found = [s.payload for page in store.iter_snapshots(conn, "company", system="crm") for s in page]
    return sorted((c for c in found if c.get("uscc") and c.get("name")), key=lambda c: str(c["crm_id"]))


def _people(sims: Any) -> list[dict[str, Any]]:
    users = sims.oa.admin("GET", "/_sim/users")
    rated = [u for u in users["users"] if u.get("role") in ("employee", "sales_manager") and u.get("email")]
    return sorted(rated, key=lambda u: str(u["user_id"]))


def drop_files(sims: Any, demo_dir: Path, hub: Any) -> Path:
    """The two spreadsheets of step 1 in the import folder; returns the folder."""
    import openpyxl

    folder = demo_dir / IMPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    customer = _customers(hub)[0]
    with (folder / "满意度回访-线下.csv").open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([
            ["问卷类型", "评分", "提交时间", "统一社会信用代码", "客户名称", "评价内容"],
            ["净推荐值", "9", "2026-11-20", customer["uscc"], "", "上线顺利，愿意推荐"],
            ["客户满意度", "4", "2026-11-21", "", customer["name"], "培训资料可以再多一些"],
            ["客户满意度", "2", "2026-11-22", "", "并不存在的客户有限公司", "电话回访"],
        ])
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["被评估人", "员工邮箱", "评估周期", "周期开始日期", "周期结束日期", "绩效等级", "绩效分数"])
    for n, person in enumerate(_people(sims)[:3]):
        who = [person["user_id"], None] if n % 2 == 0 else [None, person["email"]]
        sheet.append([*who, "2024年下半年", "2024-07-01", "2024-12-31", "ABC"[n], 85 - 8 * n])
    sheet.append(["u_left_company", None, "2024年下半年", "2024-07-01", "2024-12-31", "B", 75])
    book.save(folder / "绩效-2024下半年.xlsx")
    return folder


def _run_steps(sims: Any, hub: Any, folder: Path) -> dict[str, int]:
    from bridge import settings
    from bridge.context import RunContext
    from bridge.hooks.crm import CrmHook
    from bridge.hooks.oa import OaHook
    from bridge.journey import imports, sources, tasks
    from bridge.sync.frame import Hooks

    # The files were just written by this scene: no copy is under way, so no quiet period.
    cfg = settings.load_typed().journey.model_copy(update={"import_dir": str(folder), "import_quiet_seconds": 0})
    counts: Counter[str] = Counter()
    with sims.as_connections():
        crm, oa = CrmHook(), OaHook()
        try:
            for step in (sources.stage_campaigns, sources.stage_events, sources.stage_contact_sources,
                         sources.stage_feedback, sources.stage_reviews, imports.import_folder):
                ctx = RunContext.local(principal="bridge-service", dag_id="journey_sync")
                run = tasks.journey_run(Hooks(crm_hook=crm, oa_hook=oa), hub, ctx, datetime.now(UTC), cfg)
                counts.update(tasks.run_step(run, step.__name__, step)["counts"])
        finally:
            crm.close()
            oa.close()
    return dict(counts)


def scene(sims: Any, demo_dir: Path) -> list[str]:
    """Steps 1 and 2 in this process; the lines the demo prints."""
    hub = _hub(demo_dir)
    folder = drop_files(sims, demo_dir, hub)
    return [_staged_line(_run_steps(sims, hub, folder)), *_outcome(hub, folder)]


def report(demo_dir: Path) -> list[str]:
    """What the journey_sync DAG run staged (its run summary), quarantined and did with the files."""
    from bridge.hub import store

    hub = _hub(demo_dir)
    with hub.connect() as conn:
        [summary] = store.recent_runs(conn, kind="journey_sync", limit=1) or [None]
    return [_staged_line(summary.counts if summary is not None else {}), *_outcome(hub, demo_dir / IMPORT_DIR)]


def _staged_line(counts: Any) -> str:
    import bridge.dictionary
    from bridge.journey import ENTITIES

    d = bridge.dictionary.load()
    staged = "，".join(f"{d.entity(e).label} {counts.get(f'staged_{e}', 0)}" for e in ENTITIES)
    return f"客户旅程数据接入：暂存 {staged}（共读取 {counts.get('read', 0)} 条）"


def _outcome(hub: Any, folder: Path) -> list[str]:
    from bridge.hub import store
    from bridge.journey import DIRECTION

    lines: list[str] = []
    with hub.connect() as conn:
        entries = store.list_quarantine(conn, store.QuarantineFilter(direction=DIRECTION))
    for e in entries:
        lines.append(f"隔离（{store.REASON_LABELS.get(e.reason_code, e.reason_code)}）：{e.message}")
    done = sorted(p.name for p in (folder / "done").glob("*") if p.is_file())
    failed = sorted(p.name for p in (folder / "failed").glob("*") if p.is_file())
    lines.append(f"导入文件：已读取 {len(done)} 个（{folder / 'done'}），未导入 {len(failed)} 个")
    return lines


# ---------------------------------------------------------------- the story the demo tells (issue 20, Done when)
STORY_ROLE = "management"  # the timeline is shown as 管理层 sees it (every source of both systems)
STORY_KINDS = ("deal", "stage", "approval", "won", "survey")  # after the first touch, in time order


def _story_candidates(hub: Any) -> list[str]:
    """Customers with a campaign first touch, a won deal and a survey answer, from the staged records."""
    from bridge.hub import store

    def payloads(entity: str) -> list[dict[str, Any]]:
        with hub.connect() as conn:
            return [s.payload for page in store.iter_snapshots(conn, entity, system="crm") for s in page]

    touched = {str(p.get("company_id")) for p in payloads("contact_source") if p.get("first_touch_campaign_id")}
    won = {str(p.get("company_id")) for p in payloads("deal") if p.get("stage") in ("won", "delivered")}
    answered = {str(p.get("company_id")) for p in payloads("feedback_submission") if p.get("company_id")}
    return sorted(touched & won & answered, key=lambda c: (len(c), c))


def _story_timeline(hub: Any, policy: Any) -> Any:
    """The first candidate whose timeline (as 管理层 sees it) shows the campaign touch, the win and the answer."""
    from bridge.journey import marts, views

    with hub.connect() as conn:
        for company_id in _story_candidates(hub)[:50]:
            line = views.customer_timeline(conn, company_id, marts.Projection(policy, STORY_ROLE),
                                           now=datetime.now(UTC),
                                           may_see_document=views.document_rule(policy, STORY_ROLE))
            kinds = {e.kind for e in line.events} if line is not None else set()
            touch = line is not None and any(e.kind in ("first_touch", "event") and "营销活动" in e.detail
                                             for e in line.events)
            if touch and {"won", "survey"} <= kinds:
                return line
    return None


def _story_events(line: Any, max_events: int) -> list[Any]:
    """The campaign touch (the earliest one naming a campaign), then deals, stage changes, approvals, the win and
    the answers; at most ``max_events``, the win and the answers always kept."""
    touch = next(e for e in line.events if e.kind in ("first_touch", "event") and "营销活动" in e.detail)
    rest = [e for e in line.events if e.kind in STORY_KINDS]
    must = [e for e in rest if e.kind in ("won", "survey")]
    room = max(max_events - 1 - len(must), 0)
    kept = {id(e) for e in must} | {id(e) for e in [e for e in rest if e.kind not in ("won", "survey")][:room]}
    return [touch, *(e for e in rest if id(e) in kept)]


def _event_line(e: Any) -> str:
    days = f"（停留 {e.days:.0f} 天）" if e.days is not None else ""
    return f"  {e.at.astimezone(TZ_SHANGHAI):%Y-%m-%d} {e.title}{days}：{e.detail or '-'}"


def story(demo_dir: Path, max_events: int = 12) -> list[str]:
    """One customer's journey from a campaign to a signed contract and a satisfaction answer, then the people ×
    satisfaction table as 人力资源部 sees it (people, audited) and as an employee sees it (groups only)."""
    from bridge import permissions

    hub, policy = _hub(demo_dir), permissions.load()
    line = _story_timeline(hub, policy)
    if line is None:
        lines = ["客户旅程：没有同时有营销活动首次接触、赢单和满意度回答的客户（先运行两个同步和 journey_sync）。"]
    else:
        lines = [f"客户旅程（{line.name or line.company_id}，{policy.roles[STORY_ROLE]}视角，共 {len(line.events)} 步）："]
        lines += [_event_line(e) for e in _story_events(line, max_events)]
    return lines + people_lines(hub, policy)


def people_lines(hub: Any, policy: Any) -> list[str]:
    """The people × satisfaction rows as 人力资源部 sees them, then what 普通员工 sees (groups only)."""
    from bridge.journey import views
    from bridge.journey.view_settings import journey_views

    cfg = journey_views()
    hr = views.Looker("hr", "hr", None)
    employee = views.Looker("employee", "employee", cfg.user_owners.get("employee"))
    with hub.begin() as conn:
        seen = views.people_view(conn, hr, policy, cfg)
        views.audit_personal_view(conn, hr, policy, [(r.owner_id, r.period_id) for r in seen.rows], "demo")
        grouped = views.people_view(conn, employee, policy, cfg)
    period = seen.period.name if seen.period else "无考核周期"
    lines = [f"绩效与满意度（{policy.roles['hr']}，{period}）：{len(seen.rows)} 人逐人可见（已记审计）"]
    for r in seen.rows:
        lines.append(f"  {seen.names.get(r.owner_id, r.owner_id)}：绩效 {r.rating or '-'}，CSAT {_num(r.csat)}，"
                     f"NPS {_num(r.nps)}，回答 {r.responses} 条，赢单率 {_pct(r.win_rate)}")
    lines.append(f"绩效与满意度（{policy.roles['employee']}）：逐人 {len(grouped.rows)} 行，仅看分组汇总"
                 f"（每组至少 {cfg.min_group_size} 人，未成组 {grouped.suppressed} 人）")
    for g in grouped.groups:
        lines.append(f"  {g.group}：{g.people} 人，回答 {g.responses} 条，CSAT {_num(g.csat)}，NPS {_num(g.nps)}，"
                     f"赢单率 {_pct(g.win_rate)}")
    return lines


def _num(value: float | None) -> str:
    return "-（回答不足）" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
