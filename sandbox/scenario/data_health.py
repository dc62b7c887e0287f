"""Demo around the ``data_health`` DAG, and the world → hub staging the tests and the benchmark share.

``before``: when the hub holds no snapshots yet (the sync DAGs have not
staged any), stage the demo world into it the way the syncs do, so the health
checks have something to look at. ``after``: print the overall score, the
weakest departments and where the Data Docs and the summary page are.

Staging follows ``bridge.staging`` (THE snapshot convention): CRM objects as
the simulator serves them (``wire_properties``) through ``Dictionary.from_crm``,
OA instance details in the simulator's own shape (``sandbox.oa.history.detail``)
through ``Dictionary.from_oa``, then ``snapshot_row`` + ``store.upsert_snapshots``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from bridge.dictionary import Dictionary
from bridge.hub import store
from bridge.staging import snapshot_row
from sandbox.common.world import SeedInstance, SeedObject, World, wire_properties

CRM_ENTITIES = {"companies": "company", "contacts": "contact", "deals": "deal"}


def crm_result(d: Dictionary, obj: SeedObject) -> Any:
    entity = CRM_ENTITIES[obj.object_type]
    return d.from_crm(entity, {"id": obj.id, "properties": wire_properties(obj)}, obj.associations)


class OaDetails:
    """Feishu instance details of world instances, built by the OA simulator's own code."""

    def __init__(self, world: World) -> None:
        from sandbox.oa.definitions import load_definitions
        from sandbox.oa.seed import people_rows

        self.definitions = load_definitions()
        users, _ = people_rows(world)
        self.people = {u["user_id"]: u for u in users}

    def detail(self, inst: SeedInstance) -> dict[str, Any]:
        from sandbox.oa.history import detail
        from sandbox.oa.seed import instance_row

        row = instance_row(inst)
        return detail(row, self.definitions[row["approval_code"]], self.people)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stage(hub: Engine, system: str, rows: Iterable[tuple[str, Any]], batch: int) -> int:
    """Upsert ``(entity, snapshot row or None)`` pairs, one transaction per ``batch``; returns rows staged."""
    staged = 0
    for chunk in _chunks(rows, batch):
        by_entity: dict[str, list[Any]] = {}
        for entity, row in chunk:
            if row is not None:
                by_entity.setdefault(entity, []).append(row)
        with hub.begin() as conn:
            for entity, entity_rows in by_entity.items():
                store.upsert_snapshots(conn, system, entity, entity_rows)
                staged += len(entity_rows)
    return staged


def stage_crm(hub: Engine, d: Dictionary, objects: Iterable[SeedObject], batch: int = 2000) -> int:
    """Map and upsert CRM objects (one entity or mixed); returns rows staged."""

    def mapped(obj: SeedObject) -> tuple[str, Any]:
        entity = CRM_ENTITIES[obj.object_type]
        return entity, snapshot_row(d, entity, crm_result(d, obj), obj.modified_ms)

    return _stage(hub, "crm", map(mapped, objects), batch)


def stage_oa(hub: Engine, d: Dictionary, details: Iterable[tuple[str, dict[str, Any]]], batch: int = 2000) -> int:
    """Map and upsert ``(entity, instance detail)`` pairs; returns rows staged."""
    rows = ((entity, snapshot_row(d, entity, d.from_oa(entity, detail), int(detail.get("start_time") or 0)))
            for entity, detail in details)
    return _stage(hub, "oa", rows, batch)


def link_owners(hub: Engine, d: Dictionary, world: World) -> int:
    """The ``owner_user`` links the syncs keep (CRM owner id ⇄ OA user id) for owners with an OA account."""
    n = 0
    with hub.begin() as conn:
        for e in world.owners:
            if e.owner_id and e.oa_account:
                store.save_link(conn, "owner_user", store.NewLink(crm_type="owner", crm_id=e.owner_id, oa_type="user",
                                                                  oa_id=e.user_id), dictionary_version=d.version)
                n += 1
    return n


def stage_world(hub: Engine, world: World, d: Dictionary, batch: int = 2000) -> dict[str, int]:
    """The whole world as the syncs would have staged it; returns counts per system."""
    crm = stage_crm(hub, d, [*world.iter_companies(), *world.iter_contacts(), *world.iter_deals()], batch)
    details = OaDetails(world)
    oa = stage_oa(hub, d, ((inst.approval, details.detail(inst)) for inst in world.iter_oa_instances()), batch)
    return {"crm": crm, "oa": oa, "owner_links": link_owners(hub, d, world)}


def snapshot_count(hub: Engine) -> int:
    from bridge.hub.schema import snapshot

    with hub.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(snapshot)).scalar_one())


# ---------------------------------------------------------------- demo hooks
def _hub_engine(demo_dir: Path) -> Engine:
    from bridge.hub import engine

    return engine.ensure_schema(f"sqlite:///{demo_dir / 'hub.sqlite'}")


def before(sims: Any, demo_dir: Path) -> list[str]:
    """Stage the demo world into an empty hub (what the syncs would have done)."""
    import bridge.dictionary

    hub = _hub_engine(demo_dir)
    if snapshot_count(hub):
        return []
    counts = stage_world(hub, World(seed=20261126), bridge.dictionary.load())
    return [f"中枢库尚无快照：已按同步的方式暂存演示数据（CRM {counts['crm']} 条，OA {counts['oa']} 条）供数据健康检查使用"]


def after(sims: Any, demo_dir: Path) -> list[str]:
    """The score, the weakest departments, and where to read the details."""
    from bridge import quality

    hub = _hub_engine(demo_dir)
    with hub.connect() as conn:
        overall = quality.latest_scores(conn, "overall")
        departments = quality.latest_scores(conn, "department")
        failing = quality.failing_checks(conn)
    if not overall:
        return ["数据健康：尚无评分（DAG 未写入结果）"]
    day = overall[0].day
    lines = [f"数据健康评分 {overall[0].score:.1f}/100（{day}），未通过检查 {len(failing)} 项"]
    if departments:
        import bridge.dictionary

        names = {k: v.label for k, v in bridge.dictionary.load().departments.items()}
        worst = sorted(departments, key=lambda s: s.score)[:3]
        lines.append("部门评分（最低）：" + "，".join(f"{names.get(s.scope, s.scope)} {s.score:.1f}" for s in worst))
    docs = demo_dir / "data_docs" / "index.html"
    summary = demo_dir / "data_health" / day.isoformat() / "summary.html"
    lines.append(f"Data Docs：{docs}" + ("" if docs.exists() else "（未生成）"))
    lines.append(f"健康摘要：{summary}" + ("" if summary.exists() else "（未生成）"))
    outbox = demo_dir / "outbox"
    if outbox.exists():
        lines.append(f"通知邮件：{len(list(outbox.glob('*.eml')))} 封（{outbox}）")
    return lines


def demo_summary_json(demo_dir: Path) -> dict[str, Any] | None:
    """The latest summary.json of the demo (for scripts)."""
    found = sorted((demo_dir / "data_health").glob("*/summary.json"))
    return json.loads(found[-1].read_text(encoding="utf-8")) if found else None
