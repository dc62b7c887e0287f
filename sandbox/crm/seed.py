"""Bulk load of the demo world into the CRM simulator's database.

A million deals load in about a minute: records come from
``sandbox.common.world.World`` in chunks (each a pure function of seed and
index), go in with ``executemany`` in id order under ``synchronous=OFF``,
and the secondary indexes are built once at the end (sorting once is much
cheaper than updating three B-trees a million times in random order). Runs on
its own connection, so the server keeps answering (``/_sim/health`` says
``seeding``) while it loads.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sandbox.common.world import World, wire_properties
from sandbox.crm import journey_seed
from sandbox.crm.model import OBJECT_TYPES
from sandbox.crm.store import DROP_INDEXES, INDEXES, LIFECYCLE_TABLES, SCHEMA, connect

DERIVED = ("createdate", "hs_lastmodifieddate", "lastmodifieddate", "hs_object_id")


@dataclass(frozen=True)
class SeedRequest:
    seed: int
    companies: int = 200
    contacts_per_company: int = 2
    deals: int = 400
    dirty_share: float = 0.05
    now_ms: int | None = None

    def world(self) -> World:
        return World(seed=self.seed, companies=self.companies, contacts_per_company=self.contacts_per_company,
                     deals=self.deals, oa_instances=0, dirty_share=self.dirty_share, now_ms=self.now_ms)


def seed_database(path: Path | str, request: SeedRequest, chunk: int = 20_000) -> dict[str, Any]:
    """Replace every object and association with the world of ``request``; return counts and timings."""
    started = time.perf_counter()
    world = request.world()
    db = connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        for stmt in DROP_INDEXES:
            db.execute(stmt)
        for table in ("objects", "assoc", "uniq", *LIFECYCLE_TABLES):
            db.execute("DROP TABLE IF EXISTS " + table)  # fixed table names
        for stmt in SCHEMA:
            db.execute(stmt)
        db.execute("COMMIT")
        db.execute("PRAGMA synchronous=OFF")
        objects: list[tuple[int, int, int, int, bytes]] = []
        links: list[tuple[int, int, int, int]] = []
        counts = {"companies": 0, "contacts": 0, "deals": 0}

        def flush() -> None:
            db.execute("BEGIN")
            db.executemany("INSERT INTO objects (id, type, created_ms, modified_ms, archived, props) "
                           "VALUES (?, ?, ?, ?, 0, ?)", objects)
            links.sort()
            db.executemany("INSERT OR IGNORE INTO assoc (from_id, to_type, to_id, from_type, is_primary) "
                           "VALUES (?, ?, ?, ?, 1)", links)
            db.execute("COMMIT")
            objects.clear()
            links.clear()

        stream = journey_seed.with_journey(  # original sources and survey answers (customer journey)
            world, itertools.chain(world.iter_companies(), world.iter_contacts(), world.iter_deals()))
        for obj in stream:
            t = OBJECT_TYPES[obj.object_type]
            props = wire_properties(obj)
            for name in DERIVED:
                props.pop(name, None)
            object_id = int(obj.id)
            objects.append((object_id, t.code, obj.created_ms, obj.modified_ms, orjson.dumps(props)))
            counts[obj.object_type] = counts.get(obj.object_type, 0) + 1
            for to_type, ids in obj.associations.items():
                to_code = OBJECT_TYPES[to_type].code
                for raw in ids:
                    links.append((object_id, to_code, int(raw), t.code))
                    links.append((int(raw), t.code, object_id, to_code))
            if len(objects) >= chunk:
                flush()
        flush()
        counts.update(journey_seed.seed_marketing(db, world))
        loaded = time.perf_counter()
        for stmt in INDEXES:
            db.execute(stmt)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('world_seed', ?)", (str(request.seed),))
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        done = time.perf_counter()
    finally:
        db.close()
    return {**counts, "seed": request.seed, "load_seconds": round(loaded - started, 2),
            "index_seconds": round(done - loaded, 2), "seconds": round(done - started, 2)}
