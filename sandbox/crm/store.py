"""SQLite storage of the CRM simulator: objects, associations, unique values.

One table holds every object: ``(id, type, created_ms, modified_ms,
archived, archived_ms, props)`` with ``props`` the stored (non-derived)
properties as JSON. Ids are unique across types (the demo world uses disjoint
ranges; new objects take ids from one counter), so associations are keyed by
object id. Indexes ``(type, archived, modified_ms, id)`` and ``(type,
archived, created_ms, id)`` serve the searches the bridge runs: a range on
``hs_lastmodifieddate`` sorted by it, paged. Paging resumes from the last key
of the previous page (``(modified_ms, id) > (?, ?)``, tested first in the
WHERE clause) when the same query asked for that page (or for the page one
record earlier: overlapping pages), and falls back to OFFSET otherwise, so answers are those of HubSpot's offset paging while a
million-row table pages at constant cost.

SQL is assembled from fixed fragments; values are always bound parameters.
All calls come from the server's event-loop thread; only seeding runs in a
worker thread on its own connection (``sandbox.crm.seed``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from sandbox.common.world import World
from sandbox.crm.errors import HubSpotError
from sandbox.crm.journey_seed import SCHEMA as MARKETING_SCHEMA
from sandbox.crm.journey_seed import TABLES as MARKETING_TABLES
from sandbox.crm.model import (
    BY_CODE,
    OBJECT_TYPES,
    QUERY_PROPERTIES,
    ObjectType,
    PropertyDef,
    build_properties,
)
from sandbox.crm.search import Row, SearchPlan, _cmp_key, column_match, groups_sql

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS objects (id INTEGER PRIMARY KEY, type INTEGER NOT NULL, "
    "created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL, archived INTEGER NOT NULL DEFAULT 0, "
    "archived_ms INTEGER, props BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS assoc (from_id INTEGER NOT NULL, to_type INTEGER NOT NULL, "
    "to_id INTEGER NOT NULL, from_type INTEGER NOT NULL, is_primary INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (from_id, to_type, to_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS uniq (type INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, "
    "id INTEGER NOT NULL, PRIMARY KEY (type, name, value)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # user-defined association labels: one type id per direction, ``inverse_id`` the other direction
    "CREATE TABLE IF NOT EXISTS label_def (type_id INTEGER PRIMARY KEY, from_type INTEGER NOT NULL, "
    "to_type INTEGER NOT NULL, label TEXT NOT NULL, name TEXT NOT NULL, inverse_id INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS assoc_label (from_id INTEGER NOT NULL, to_id INTEGER NOT NULL, "
    "type_id INTEGER NOT NULL, PRIMARY KEY (from_id, to_id, type_id)) WITHOUT ROWID",
    # merges: an absorbed id answers with its survivor
    "CREATE TABLE IF NOT EXISTS merged (absorbed_id INTEGER PRIMARY KEY, survivor_id INTEGER NOT NULL, "
    "type INTEGER NOT NULL, merged_ms INTEGER NOT NULL)",
    # properties created through POST /crm/v3/properties/{objectType}
    "CREATE TABLE IF NOT EXISTS prop_def (type INTEGER NOT NULL, name TEXT NOT NULL, def BLOB NOT NULL, "
    "PRIMARY KEY (type, name)) WITHOUT ROWID",
)
LIFECYCLE_TABLES = ("label_def", "assoc_label", "merged", "prop_def")
FIRST_LABEL_TYPE_ID = 1_000
INDEXES = (
    "CREATE INDEX IF NOT EXISTS objects_modified ON objects (type, archived, modified_ms, id)",
    "CREATE INDEX IF NOT EXISTS objects_created ON objects (type, archived, created_ms, id)",
    "CREATE INDEX IF NOT EXISTS objects_type ON objects (type, archived, id)",
)
DROP_INDEXES = ("DROP INDEX IF EXISTS objects_modified", "DROP INDEX IF EXISTS objects_created",
                "DROP INDEX IF EXISTS objects_type")
ROW = "SELECT id, created_ms, modified_ms, archived, archived_ms, props FROM objects "
FIRST_NEW_ID = 90_000_000_001
PORTAL_ID = 242_000_042
DEFAULT_WORLD_SEED = 20261126
_SORT_INDEX = {"id": 0, "created_ms": 1, "modified_ms": 2}

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)

    def clear(self) -> None:
        self.data.clear()


class Clock:
    """The server's clock: real time plus an offset the admin API can shift (clock-skew tests), or
    frozen at one instant (tests that need equal ``hs_lastmodifieddate`` values)."""

    def __init__(self) -> None:
        self.offset_ms = 0
        self.frozen_ms: int | None = None

    def now_ms(self) -> int:
        if self.frozen_ms is not None:
            return self.frozen_ms
        return int(time.time() * 1000) + self.offset_ms


def connect(path: Path | str) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("PRAGMA cache_size=-262144")  # 256 MB
    db.execute("PRAGMA mmap_size=2147483648")
    return db


def not_unique(t: ObjectType, name: str) -> HubSpotError:
    return HubSpotError(400, f"Unable to perform update/upsert by non-unique {t.type_id} property {name} "
                             f"in portal ID {PORTAL_ID}", "VALIDATION_ERROR")


def missing_property(t: ObjectType, name: str) -> HubSpotError:
    """An ``idProperty`` the portal does not have — not the "non-unique" answer, which is for a property
    that exists without ``hasUniqueValue``."""
    return HubSpotError(400, f"Property \"{name}\" does not exist on object type {t.type_id}", "VALIDATION_ERROR",
                        errors=[{"message": f"Property \"{name}\" does not exist", "code": "PROPERTY_DOESNT_EXIST",
                                 "context": {"propertyName": [name]}}])


def id_property_error(t: ObjectType, defs: dict[str, PropertyDef], name: str) -> HubSpotError | None:
    """Why ``name`` cannot identify records (missing, or not unique); None when it can."""
    p = defs.get(name)
    if p is None:
        return missing_property(t, name)
    return None if p.unique else not_unique(t, name)


class Store:
    """Objects, associations and caches of one simulated portal."""

    def __init__(self, path: Path | str, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock = clock or Clock()
        self.db = connect(self.path)
        for stmt in (*SCHEMA, *INDEXES, *MARKETING_SCHEMA):
            self.db.execute(stmt)
        self.lock = threading.RLock()
        self.gen: Counter[int] = Counter()  # bumped on every write of a type: cache validity
        self.writes: Counter[tuple[str, str]] = Counter()  # (object type, created|updated|archived|upserted)
        self._counts: Lru[tuple[Any, ...], int] = Lru(512)
        self._keysets: Lru[tuple[Any, ...], tuple[int, int]] = Lru(4096)
        self._matches: Lru[tuple[Any, ...], list[int]] = Lru(8)
        self.seeding = False
        self.world_seed = int(self.meta("world_seed") or DEFAULT_WORLD_SEED)
        self.defs = self._load_defs()

    # ------------------------------------------------------------ meta
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def set_world_seed(self, seed: int) -> None:
        self.world_seed = seed
        self.set_meta("world_seed", str(seed))
        self.defs = self._load_defs()

    def _load_defs(self) -> dict[str, dict[str, PropertyDef]]:
        """The portal's properties: HubSpot's and the portal's own, plus those created through the API."""
        defs = build_properties(World(seed=self.world_seed, companies=0, deals=0).owners)
        for code, name, blob in self.db.execute("SELECT type, name, def FROM prop_def"):
            if code in BY_CODE:
                raw = orjson.loads(blob)
                raw["options"] = tuple(tuple(o) for o in raw.get("options", ()))
                defs[BY_CODE[code].name][name] = PropertyDef(**raw)
        return defs

    def create_property(self, t: ObjectType, p: PropertyDef) -> None:
        """Persist a property created through the properties API (``hasUniqueValue`` included)."""
        blob = orjson.dumps({**p.__dict__, "options": [list(o) for o in p.options]})
        self.db.execute("INSERT INTO prop_def (type, name, def) VALUES (?, ?, ?)", (t.code, p.name, blob))
        self.defs[t.name][p.name] = p

    def owners(self) -> list[Any]:
        return World(seed=self.world_seed, companies=0, deals=0).owners

    def invalidate(self) -> None:
        """After a bulk change (seed, reset): every cache is stale."""
        for code in BY_CODE:
            self.gen[code] += 1
        self._counts.clear()
        self._keysets.clear()
        self._matches.clear()

    def is_empty(self) -> bool:
        return self.db.execute("SELECT 1 FROM objects LIMIT 1").fetchone() is None

    def counts(self) -> dict[str, int]:
        out = {t.name: 0 for t in OBJECT_TYPES.values()}
        for code, n in self.db.execute("SELECT type, COUNT(*) FROM objects WHERE archived = 0 GROUP BY type"):
            if code in BY_CODE:
                out[BY_CODE[code].name] = n
        return out

    def reset(self) -> None:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            for table in ("objects", "assoc", "uniq", "meta", *LIFECYCLE_TABLES, *MARKETING_TABLES):
                self.db.execute("DELETE FROM " + table)  # fixed table names
            self.db.execute("COMMIT")
            self.db.execute("VACUUM")
            self.world_seed = DEFAULT_WORLD_SEED
            self.defs = self._load_defs()
            self.writes.clear()
            self.invalidate()

    # ------------------------------------------------------------ reads
    def get(self, t: ObjectType, object_id: int, archived: bool = False) -> Row | None:
        row = self.db.execute(ROW + "WHERE id = ? AND type = ? AND archived = ?",
                              (object_id, t.code, int(archived))).fetchone()
        return row

    def get_many(self, t: ObjectType, ids: Iterable[int], archived: bool = False) -> dict[int, Row]:
        wanted = list(dict.fromkeys(ids))
        out: dict[int, Row] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            sql = ROW + "WHERE type = ? AND archived = ? AND id IN (" + ",".join("?" * len(chunk)) + ")"
            for row in self.db.execute(sql, (t.code, int(archived), *chunk)):
                out[row[0]] = row
        return out

    def find_unique(self, t: ObjectType, name: str, value: str) -> int | None:
        row = self.db.execute("SELECT id FROM uniq WHERE type = ? AND name = ? AND value = ?",
                              (t.code, name, value)).fetchone()
        return None if row is None else int(row[0])

    def resolve_id(self, t: ObjectType, raw: str, id_property: str | None) -> int | None:
        """The record id named by ``raw`` (a record id, or a unique property's value)."""
        if not id_property or id_property == "hs_object_id":
            return int(raw) if raw.isdigit() else None
        problem = id_property_error(t, self.defs[t.name], id_property)
        if problem is not None:
            raise problem
        return self.find_unique(t, id_property, raw)

    def list_page(self, t: ObjectType, after_id: int, limit: int, archived: bool) -> list[Row]:
        """``limit + 1`` rows from ``after_id`` on (the extra row tells the next cursor)."""
        return self.db.execute(ROW + "WHERE type = ? AND archived = ? AND id >= ? ORDER BY id LIMIT ?",
                               (t.code, int(archived), after_id, limit + 1)).fetchall()

    # ------------------------------------------------------------ writes
    def _new_id(self) -> int:
        raw = self.meta("next_id")
        next_id = int(raw) if raw else FIRST_NEW_ID
        self.set_meta("next_id", str(next_id + 1))
        return next_id

    def _claim_unique(self, t: ObjectType, object_id: int, props: dict[str, str], old: dict[str, str]) -> None:
        for name, p in self.defs[t.name].items():
            if not p.unique or name not in props or props[name] == old.get(name):
                continue
            value = props[name]
            if value:
                holder = self.find_unique(t, name, value)
                if holder is not None and holder != object_id:
                    raise HubSpotError(409, f"A {t.singular} with the unique value \"{value}\" of property "
                                            f"\"{name}\" already exists. Existing ID: {holder}", "CONFLICT",
                                       context={"id": [str(holder)], "propertyName": [name]})
            if old.get(name):
                self.db.execute("DELETE FROM uniq WHERE type = ? AND name = ? AND value = ?",
                                (t.code, name, old[name]))
            if value:
                self.db.execute("INSERT OR REPLACE INTO uniq (type, name, value, id) VALUES (?, ?, ?, ?)",
                                (t.code, name, value, object_id))

    def create(self, t: ObjectType, props: dict[str, str], created_ms: int | None = None,
               associations: Iterable[tuple[str, int, bool]] = (), op: str = "created") -> Row:
        """Insert one object (inside the caller's transaction if any)."""
        now = self.clock.now_ms()
        object_id = self._new_id()
        self._claim_unique(t, object_id, props, {})
        created = created_ms if created_ms is not None else now
        blob = orjson.dumps(props)
        self.db.execute("INSERT INTO objects (id, type, created_ms, modified_ms, archived, props) "
                        "VALUES (?, ?, ?, ?, 0, ?)", (object_id, t.code, created, now, blob))
        for to_type, to_id, primary in associations:
            self.associate(t.name, object_id, to_type, to_id, primary)
        self.gen[t.code] += 1
        self.writes[(t.name, op)] += 1
        return (object_id, created, now, 0, None, blob)

    def update(self, t: ObjectType, row: Row, props: dict[str, str], created_ms: int | None = None,
               op: str = "updated") -> Row:
        """Apply written properties to a live object; ``hs_lastmodifieddate`` moves, strictly increasing."""
        old = orjson.loads(row[5])
        self._claim_unique(t, row[0], props, old)
        if t.name == "contacts" and props.get("associatedcompanyid", old.get("associatedcompanyid")) != old.get(
                "associatedcompanyid"):
            self._primary_from_property(row[0], props["associatedcompanyid"])
        merged = {**old, **props}
        modified = max(self.clock.now_ms(), row[2] + 1)
        created = created_ms if created_ms is not None else row[1]
        blob = orjson.dumps(merged)
        self.db.execute("UPDATE objects SET props = ?, modified_ms = ?, created_ms = ? WHERE id = ?",
                        (blob, modified, created, row[0]))
        self.gen[t.code] += 1
        self.writes[(t.name, op)] += 1
        return (row[0], created, modified, 0, None, blob)

    def archive(self, t: ObjectType, object_id: int) -> bool:
        """Archive (HubSpot's DELETE): ``hs_lastmodifieddate`` does NOT move, as on HubSpot, so an
        incremental search on it never sees the deletion; search hides the record from now on."""
        row = self.get(t, object_id)
        if row is None:
            return False
        now = max(self.clock.now_ms(), row[2] + 1)
        self.db.execute("UPDATE objects SET archived = 1, archived_ms = ? WHERE id = ?", (now, object_id))
        self.db.execute("DELETE FROM uniq WHERE type = ? AND id = ?", (t.code, object_id))
        self.gen[t.code] += 1
        self.writes[(t.name, "archived")] += 1
        return True

    def restore(self, t: ObjectType, object_id: int) -> Row | None:
        """Bring an archived record back (HubSpot's recycle bin, in its UI only: no API). Its unique
        values are claimed again (409 when another record took one meanwhile); ``hs_lastmodifieddate``
        is left as it was, so only a search that no longer misses it (or a sweep) notices."""
        row = self.get(t, object_id, archived=True)
        if row is None or self.survivor_of(object_id) is not None:
            return None
        self._claim_unique(t, object_id, orjson.loads(row[5]), {})
        self.db.execute("UPDATE objects SET archived = 0, archived_ms = NULL WHERE id = ?", (object_id,))
        self.gen[t.code] += 1
        self.writes[(t.name, "restored")] += 1
        return self.get(t, object_id)

    # ------------------------------------------------------------ merges
    def survivor_of(self, object_id: int) -> int | None:
        """The record an absorbed id was merged into (followed to the end of a merge chain)."""
        survivor = None
        current = object_id
        for _ in range(100):  # chains are short; a cycle cannot be built, the bound is a guard
            hit = self.db.execute("SELECT survivor_id FROM merged WHERE absorbed_id = ?", (current,)).fetchone()
            if hit is None:
                return survivor
            survivor = current = int(hit[0])
        return survivor

    def merge(self, t: ObjectType, primary_id: int, absorbed_id: int) -> Row:
        """Merge ``absorbed_id`` into ``primary_id`` (both live, same type). The survivor keeps its own
        values and takes the absorbed record's values only where it has none; ``hs_merged_object_ids``
        lists every id it absorbed (``;``-separated); associations move to the survivor; the absorbed
        record is archived and its id answers with the survivor from now on."""
        primary, absorbed = self.get(t, primary_id), self.get(t, absorbed_id)
        if primary is None or absorbed is None or primary_id == absorbed_id:
            raise HubSpotError(400, f"Cannot merge {t.singular} {absorbed_id} into {primary_id}: both must be "
                                    f"existing, different, not archived {t.name}", "VALIDATION_ERROR",
                               context={"objectIdToMerge": [str(absorbed_id)], "primaryObjectId": [str(primary_id)]})
        mine, theirs = orjson.loads(primary[5]), orjson.loads(absorbed[5])
        filled = {k: v for k, v in theirs.items() if v not in ("", None) and mine.get(k) in ("", None)}
        merged_ids = [x for x in str(mine.get("hs_merged_object_ids") or "").split(";") if x]
        merged_ids += [x for x in str(theirs.get("hs_merged_object_ids") or "").split(";") if x]
        merged_ids.append(str(absorbed_id))
        self.archive(t, absorbed_id)
        self._move_associations(absorbed_id, primary_id)
        now = self.clock.now_ms()
        self.db.execute("INSERT OR REPLACE INTO merged (absorbed_id, survivor_id, type, merged_ms) VALUES (?, ?, ?, ?)",
                        (absorbed_id, primary_id, t.code, now))
        self.writes[(t.name, "merged")] += 1
        return self.update(t, primary, {**filled, "hs_merged_object_ids": ";".join(dict.fromkeys(merged_ids))},
                           op="merged")

    def _move_associations(self, old_id: int, new_id: int) -> None:
        links = self.db.execute("SELECT to_type, to_id, from_type, is_primary FROM assoc WHERE from_id = ?",
                                (old_id,)).fetchall()
        labels = self.db.execute("SELECT to_id, type_id FROM assoc_label WHERE from_id = ?", (old_id,)).fetchall()
        back = self.db.execute("SELECT from_id, type_id FROM assoc_label WHERE to_id = ?", (old_id,)).fetchall()
        self.remove_all_associations(old_id)
        for to_type, to_id, from_type, is_primary in links:
            if to_id == new_id:
                continue
            # the survivor keeps its own primary company; the absorbed one's becomes an ordinary link
            has_primary = self.db.execute("SELECT 1 FROM assoc WHERE from_id = ? AND to_type = ? AND is_primary = 1",
                                          (new_id, to_type)).fetchone()
            self.associate(BY_CODE[from_type].name, new_id, BY_CODE[to_type].name, to_id,
                           bool(is_primary) and has_primary is None)
        for to_id, type_id in labels:
            if to_id != new_id:
                self.db.execute("INSERT OR IGNORE INTO assoc_label (from_id, to_id, type_id) VALUES (?, ?, ?)",
                                (new_id, to_id, type_id))
        for from_id, type_id in back:
            if from_id != new_id:
                self.db.execute("INSERT OR IGNORE INTO assoc_label (from_id, to_id, type_id) VALUES (?, ?, ?)",
                                (from_id, new_id, type_id))

    def transaction(self) -> _Tx:
        return _Tx(self)

    # ------------------------------------------------------------ associations
    def associate(self, from_type: str, from_id: int, to_type: str, to_id: int, primary: bool = False) -> None:
        """Link two records both ways. ``primary`` makes ``to_id`` the one primary record of that type for
        ``from_id`` (a contact's or deal's primary company): the previous primary stays linked, unlabeled;
        a contact's ``associatedcompanyid`` follows its primary company, as on HubSpot."""
        ft, tt = OBJECT_TYPES[from_type].code, OBJECT_TYPES[to_type].code
        if primary:
            self._drop_primary(from_id, tt, ft)
        for a, a_type, b, b_type in ((from_id, ft, to_id, tt), (to_id, tt, from_id, ft)):
            self.db.execute("INSERT INTO assoc (from_id, to_type, to_id, from_type, is_primary) VALUES (?, ?, ?, ?, ?) "
                            "ON CONFLICT (from_id, to_type, to_id) DO UPDATE SET is_primary = "
                            "MAX(is_primary, excluded.is_primary)", (a, b_type, b, a_type, int(primary)))
        if primary and from_type == "contacts" and to_type == "companies":
            self._set_primary_company(from_id, str(to_id))

    def _drop_primary(self, from_id: int, to_type: int, from_type: int) -> None:
        old = self.db.execute("SELECT to_id FROM assoc WHERE from_id = ? AND to_type = ? AND is_primary = 1",
                              (from_id, to_type)).fetchall()
        for (other,) in old:
            self.db.execute("UPDATE assoc SET is_primary = 0 WHERE from_id = ? AND to_id = ?", (from_id, other))
            self.db.execute("UPDATE assoc SET is_primary = 0 WHERE from_id = ? AND to_id = ? AND to_type = ?",
                            (other, from_id, from_type))

    def _set_primary_company(self, contact_id: int, company_id: str) -> None:
        row = self.get(OBJECT_TYPES["contacts"], contact_id)
        if row is None:
            return
        props = orjson.loads(row[5])
        if props.get("associatedcompanyid", "") != company_id:
            props["associatedcompanyid"] = company_id
            self.db.execute("UPDATE objects SET props = ? WHERE id = ?", (orjson.dumps(props), contact_id))
            self.gen[OBJECT_TYPES["contacts"].code] += 1

    def _primary_from_property(self, contact_id: int, raw: str) -> None:
        """Writing a contact's ``associatedcompanyid`` makes that company its primary one (HubSpot's
        behaviour); writing it empty leaves the contact without a primary company."""
        companies, contacts = OBJECT_TYPES["companies"], OBJECT_TYPES["contacts"]
        if raw.isdigit() and self.get(companies, int(raw)) is not None:
            self.associate("contacts", contact_id, "companies", int(raw), True)
        elif not raw:
            self._drop_primary(contact_id, companies.code, contacts.code)

    def remove_association(self, from_id: int, to_id: int) -> bool:
        """Unlink two records both ways, labels included; a contact that loses its primary company has an
        empty ``associatedcompanyid`` (HubSpot picks no new primary by itself)."""
        hit = self.db.execute("SELECT from_type, to_type, is_primary FROM assoc WHERE from_id = ? AND to_id = ?",
                              (from_id, to_id)).fetchone()
        if hit is None:
            return False
        self.db.execute("DELETE FROM assoc WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?)",
                        (from_id, to_id, to_id, from_id))
        self.db.execute("DELETE FROM assoc_label WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?)",
                        (from_id, to_id, to_id, from_id))
        from_type, to_type, is_primary = (BY_CODE[hit[0]].name, BY_CODE[hit[1]].name, bool(hit[2]))
        if is_primary and {from_type, to_type} == {"contacts", "companies"}:
            contact = from_id if from_type == "contacts" else to_id
            self._set_primary_company(contact, "")
        return True

    def remove_all_associations(self, object_id: int) -> None:
        for (other,) in self.db.execute("SELECT to_id FROM assoc WHERE from_id = ?", (object_id,)).fetchall():
            self.remove_association(object_id, other)

    # ------------------------------------------------------------ association labels (USER_DEFINED)
    def define_label(self, from_type: str, to_type: str, label: str, name: str) -> tuple[int, int]:
        """A user-defined label between two object types: one type id per direction (same label text)."""
        ft, tt = OBJECT_TYPES[from_type].code, OBJECT_TYPES[to_type].code
        hit = self.db.execute("SELECT type_id, inverse_id FROM label_def WHERE from_type = ? AND to_type = ? "
                              "AND name = ?", (ft, tt, name)).fetchone()
        if hit is not None:
            return int(hit[0]), int(hit[1])
        top = self.db.execute("SELECT MAX(type_id) FROM label_def").fetchone()[0]
        there = max(FIRST_LABEL_TYPE_ID, int(top or 0)) + 1
        back = there + 1
        self.db.execute("INSERT INTO label_def (type_id, from_type, to_type, label, name, inverse_id) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (there, ft, tt, label, name, back))
        self.db.execute("INSERT INTO label_def (type_id, from_type, to_type, label, name, inverse_id) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (back, tt, ft, label, name, there))
        return there, back

    def label_defs(self, from_type: str, to_type: str) -> list[tuple[int, str]]:
        ft, tt = OBJECT_TYPES[from_type].code, OBJECT_TYPES[to_type].code
        return [(int(i), str(lbl)) for i, lbl in self.db.execute(
            "SELECT type_id, label FROM label_def WHERE from_type = ? AND to_type = ? ORDER BY type_id", (ft, tt))]

    def label_of(self, type_id: int) -> tuple[str, str, str, int] | None:
        """(from type, to type, label, inverse type id) of a user-defined type id."""
        hit = self.db.execute("SELECT from_type, to_type, label, inverse_id FROM label_def WHERE type_id = ?",
                              (type_id,)).fetchone()
        if hit is None or hit[0] not in BY_CODE or hit[1] not in BY_CODE:
            return None
        return BY_CODE[hit[0]].name, BY_CODE[hit[1]].name, str(hit[2]), int(hit[3])

    def add_label(self, from_id: int, to_id: int, type_id: int) -> None:
        self._label_both_ways("INSERT OR IGNORE INTO assoc_label (from_id, to_id, type_id) VALUES (?, ?, ?)",
                              from_id, to_id, type_id)

    def remove_label(self, from_id: int, to_id: int, type_id: int) -> None:
        self._label_both_ways("DELETE FROM assoc_label WHERE from_id = ? AND to_id = ? AND type_id = ?",
                              from_id, to_id, type_id)

    def _label_both_ways(self, sql: str, from_id: int, to_id: int, type_id: int) -> None:
        found = self.label_of(type_id)
        if found is not None:  # a label is kept in both directions, each with its own type id
            self.db.execute(sql, (from_id, to_id, type_id))
            self.db.execute(sql, (to_id, from_id, found[3]))

    def labels(self, from_ids: list[int], to_type: str) -> dict[tuple[int, int], list[tuple[int, str]]]:
        """User-defined labels per (from id, to id) towards ``to_type``."""
        code = OBJECT_TYPES[to_type].code
        out: dict[tuple[int, int], list[tuple[int, str]]] = {}
        for start in range(0, len(from_ids), 500):
            chunk = from_ids[start:start + 500]
            sql = ("SELECT l.from_id, l.to_id, l.type_id, d.label FROM assoc_label l JOIN label_def d "
                   "ON d.type_id = l.type_id AND d.to_type = ? WHERE l.from_id IN (" + ",".join("?" * len(chunk))
                   + ") ORDER BY l.from_id, l.to_id, l.type_id")
            for from_id, to_id, type_id, label in self.db.execute(sql, (code, *chunk)):
                out.setdefault((from_id, to_id), []).append((int(type_id), str(label)))
        return out

    def associations(self, from_ids: list[int], to_type: str) -> dict[int, list[tuple[int, bool]]]:
        """Live associated ids (archived targets hidden) per source id, ascending."""
        code = OBJECT_TYPES[to_type].code
        out: dict[int, list[tuple[int, bool]]] = {i: [] for i in from_ids}
        for start in range(0, len(from_ids), 500):
            chunk = from_ids[start:start + 500]
            sql = ("SELECT a.from_id, a.to_id, a.is_primary FROM assoc a JOIN objects o ON o.id = a.to_id "
                   "AND o.archived = 0 WHERE a.to_type = ? AND a.from_id IN (" + ",".join("?" * len(chunk))
                   + ") ORDER BY a.from_id, a.to_id")
            for from_id, to_id, primary in self.db.execute(sql, (code, *chunk)):
                out[from_id].append((to_id, bool(primary)))
        return out

    # ------------------------------------------------------------ search
    def search(self, t: ObjectType, plan: SearchPlan) -> tuple[int, list[Row]]:
        """(total, page rows) of a search, in the plan's order, ties by id."""
        if plan.all_pushdown and plan.sort_column is not None:
            return self._search_sql(t, plan)
        return self._search_scan(t, plan)

    def _search_sql(self, t: ObjectType, plan: SearchPlan) -> tuple[int, list[Row]]:
        code, gen = t.code, self.gen[t.code]
        where, params = groups_sql(plan.groups)
        count_key = (code, plan.signature, gen)
        total = self._counts.get(count_key)
        if total is None:
            total = int(self.db.execute("SELECT COUNT(*) FROM objects WHERE type = ? AND archived = 0 AND " + where,
                                        (code, *params)).fetchone()[0])
            self._counts.put(count_key, total)
        if plan.limit == 0 or plan.after >= total:
            return total, []
        col = plan.sort_column or "id"
        desc = plan.descending
        if col == "id":
            order = " ORDER BY id DESC" if desc else " ORDER BY id"
        else:
            order = " ORDER BY " + col + (" DESC, id DESC" if desc else ", id")
        cursor = self._keysets.get((code, plan.signature, gen, plan.after)) if plan.after else None
        if cursor is not None:
            # The keyset condition comes first: SQLite then seeks straight to the cursor in the index.
            if col == "id":
                cond = "id < ? AND " if desc else "id > ? AND "
                cparams: list[int] = [cursor[1]]
            else:
                cond = "(" + col + ", id) " + ("< (?, ?) AND " if desc else "> (?, ?) AND ")
                cparams = [cursor[0], cursor[1]]
            sql = ROW + "WHERE " + cond + "type = ? AND archived = 0 AND " + where + order + " LIMIT ?"
            rows = self.db.execute(sql, (*cparams, code, *params, plan.limit)).fetchall()
        else:
            sql = ROW + "WHERE type = ? AND archived = 0 AND " + where + order + " LIMIT ? OFFSET ?"
            rows = self.db.execute(sql, (code, *params, plan.limit, plan.after)).fetchall()
        # The next page may start right after this one (``paging.next.after``) or one record earlier (a client
        # overlapping pages by a record to see whether anything moved, as the bridge's CrmHook does): both
        # resume by keyset, so the cost of a page does not depend on which of the two a client asks for.
        key = _SORT_INDEX[col]
        for back in (1, 2) if len(rows) > 1 else (1,) if rows else ():
            row = rows[-back]
            self._keysets.put((code, plan.signature, gen, plan.after + len(rows) - back + 1), (row[key], row[0]))
        return total, rows

    def _search_scan(self, t: ObjectType, plan: SearchPlan) -> tuple[int, list[Row]]:
        code, gen = t.code, self.gen[t.code]
        key = (code, plan.signature, gen)
        matches = self._matches.get(key)
        if matches is None:
            matches = self._scan(t, plan)
            self._matches.put(key, matches)
        page_ids = matches[plan.after:plan.after + plan.limit]
        by_id = self.get_many(t, page_ids)
        return len(matches), [by_id[i] for i in page_ids if i in by_id]

    def _scan(self, t: ObjectType, plan: SearchPlan) -> list[int]:
        """Every matching id in order: pushed-down filters in SQL, the rest on the parsed properties."""
        code = t.code
        prefilter, params = groups_sql(plan.groups)
        col = plan.sort_column or "id"
        if plan.sort_property is None and col != "id":
            order = " ORDER BY " + col + (" DESC, id DESC" if plan.descending else ", id")
        else:
            order = " ORDER BY id DESC" if plan.descending and plan.sort_property is None else " ORDER BY id"
        sql = ROW + "WHERE type = ? AND archived = 0 AND " + prefilter + order
        query_props = QUERY_PROPERTIES.get(t.name, ())
        sort_p: PropertyDef | None = plan.sort_property
        keyed: list[tuple[Any, int]] = []
        ids: list[int] = []
        for row in self.db.execute(sql, (code, *params)):
            props = orjson.loads(row[5])
            if plan.query is not None and not any(plan.query in props.get(n, "").lower() for n in query_props):
                continue
            if plan.groups and not any(
                all(column_match(f, row) for f in g.columns) and all(pred(row, props) for pred in g.residual)
                for g in plan.groups
            ):
                continue
            if sort_p is not None:
                keyed.append((_cmp_key(sort_p, props.get(sort_p.name, "")), row[0]))
            else:
                ids.append(row[0])
        if sort_p is None:
            return ids
        present = [(k, i) for k, i in keyed if k is not None]
        missing = [i for k, i in keyed if k is None]  # records without a value sort last either way
        present.sort(reverse=plan.descending)
        return [i for _, i in present] + sorted(missing)

    # ------------------------------------------------------------ admin dump
    def dump(self, t: ObjectType, after_id: int, limit: int, archived: bool | None) -> list[Row]:
        if archived is None:
            return self.db.execute(ROW + "WHERE type = ? AND id >= ? ORDER BY id LIMIT ?",
                                   (t.code, after_id, limit + 1)).fetchall()
        return self.list_page(t, after_id, limit, archived)


class _Tx:
    """``with store.transaction():`` — BEGIN IMMEDIATE / COMMIT; on error ROLLBACK and the write counters
    go back to what they were, so stats count only committed writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.outer = False
        self.saved: Counter[tuple[str, str]] = Counter()

    def __enter__(self) -> _Tx:
        if not self.store.db.in_transaction:
            self.store.db.execute("BEGIN IMMEDIATE")
            self.outer = True
            self.saved = Counter(self.store.writes)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.store.db.execute("COMMIT")
        else:
            self.store.db.execute("ROLLBACK")
            self.store.writes = self.saved
