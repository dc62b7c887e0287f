"""De-duplication of customers (客户去重): exact keys first, then normalised name + credit code.

One streaming pass over every company of the CRM (four properties each)
fills a :class:`CustomerIndex` of compact keys: per company its numeric id,
creation and modification times and 64-bit hashes of its cleaned USCC and
normalised name — 32 bytes in numpy arrays, about 35 MB for a million
customers, plus what the pass over the groups needs (a sort). Names are not
kept: the few merged pairs are read back afterwards.

Rules, in order (every record belongs to exactly one customer group):

1. **same CRM id** — a record read twice (edited while we paged) is one record: no merge.
2. ``exact_key`` — the same valid 统一社会信用代码 (after cleaning: spaces, case,
   full-width, check character) is the same legal entity.
3. ``name_uscc`` — the same normalised name (``normalize_company_name``:
   half-width, no spaces, bracketed city moved to the front, 有限责任公司 =
   有限公司) **and** compatible credit codes: the groups carrying that name have at
   most one valid USCC between them (the others have none or an invalid one).
   Two valid, different codes under one name are two legal entities: never merged.

The record created first (its creation time in the CRM, then the lower id) is kept; every
other record of the group is merged into it. The CRM itself is not changed:
the merges are recorded (``merge_record``: both ids, the rule, both names) and
listed in the report for the data owners, who merge the records in the CRM.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from bridge.dictionary import formats
from bridge.hooks.hubspot_codec import CrmRecord
from bridge.hub.schema import merge_record

EXACT_KEY = "exact_key"
NAME_USCC = "name_uscc"
RULE_LABELS = {EXACT_KEY: "统一社会信用代码相同", NAME_USCC: "规范化名称相同且信用代码不冲突"}
SCAN_PROPERTIES = ("name", "uscc")  # besides the creation and modification times the hook reads


def key_hash(text: str) -> int:
    """A non-zero signed 64-bit hash of a key (0 means "no key")."""
    value = int.from_bytes(
        hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little", signed=True
    )
    return value or 1


def name_key(name: Any) -> str | None:
    text, issue = formats.clean_text(name)
    if issue or not text:
        return None
    key = formats.normalize_company_name(text)
    return key or None


def uscc_key(uscc: Any) -> str | None:
    code, issue = formats.clean_uscc(uscc)
    return None if issue else code


@dataclass(frozen=True)
class Merge:
    """One duplicate customer merged into the record that is kept."""

    kept_id: str
    merged_id: str
    rule: str  # exact_key | name_uscc
    kept_name: str | None = None
    merged_name: str | None = None
    kept_uscc: str | None = None
    merged_uscc: str | None = None

    def detail(self) -> dict[str, Any]:
        return {
            "kept_name": self.kept_name,
            "merged_name": self.merged_name,
            "kept_uscc": self.kept_uscc,
            "merged_uscc": self.merged_uscc,
            "rule_label": RULE_LABELS.get(self.rule, self.rule),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Merge:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


class CustomerIndex:
    """Compact keys of every customer, then the merge decisions (pure; no I/O)."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.created = array("q")
        self.modified = array("q")
        self.usccs = array("q")
        self.names = array("q")

    def __len__(self) -> int:
        return len(self.ids)

    def add(
        self, crm_id: str | int, created_ms: int | None, modified_ms: int | None, name: Any, uscc: Any
    ) -> None:
        try:
            numeric = int(crm_id)
        except (TypeError, ValueError):
            return  # HubSpot ids are numeric; the hook already skips records without one
        code, key = uscc_key(uscc), name_key(name)
        self.ids.append(numeric)
        self.created.append(created_ms if created_ms is not None else 2**62)
        self.modified.append(modified_ms if modified_ms is not None else 0)
        self.usccs.append(key_hash(code) if code else 0)
        self.names.append(key_hash(key) if key else 0)

    def bytes_used(self) -> int:
        return sum(
            a.itemsize * len(a) for a in (self.ids, self.created, self.modified, self.usccs, self.names)
        )

    def merges(self, modified_from: int = 0, modified_to: int | None = None) -> list[tuple[str, str, str]]:
        """``(kept id, merged id, rule)`` for every duplicate whose record was modified in the range.

        The range limits which duplicates this run merges (the ones it migrates);
        the groups and the kept record are decided over every customer.
        """
        import numpy as np

        if len(self.ids) == 0:
            return []
        ids, created, modified, usccs, names = (
            np.frombuffer(a, dtype=np.int64)
            for a in (self.ids, self.created, self.modified, self.usccs, self.names)
        )
        groups = _customer_groups(ids, usccs, names)
        out: list[tuple[str, str, str]] = []
        for group in groups:
            kept = min(group, key=lambda i: (int(created[i]), int(ids[i])))
            for i in group:
                if i == kept or int(ids[i]) == int(ids[kept]):
                    continue
                if modified[i] < modified_from or (modified_to is not None and modified[i] >= modified_to):
                    continue
                rule = EXACT_KEY if usccs[i] and usccs[i] == usccs[kept] else NAME_USCC
                out.append((str(int(ids[kept])), str(int(ids[i])), rule))
        return sorted(out, key=lambda m: (int(m[1]), m[0]))


class _UnionFind:
    """Customer groups as a union-find forest over record indexes (the smaller root wins)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _runs(keys: Any) -> Iterable[list[int]]:
    """Indexes sharing a non-zero key, group by group (a sort; Python only loops over duplicates)."""
    import numpy as np

    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    group: list[int] = []
    prev = -2
    for k in np.flatnonzero((sk[1:] == sk[:-1]) & (sk[1:] != 0)).tolist():
        if k != prev + 1:
            if group:
                yield group
            group = [int(order[k])]
        group.append(int(order[k + 1]))
        prev = k
    if group:
        yield group


def _customer_groups(ids: Any, usccs: Any, names: Any) -> list[list[int]]:
    """The groups of two or more records that are one customer (rules 1–3 of the module docstring); a record
    read again (rule 1) is left out of its group: it is never merged."""
    n = len(ids)
    forest = _UnionFind(n)
    same_id: set[int] = set()
    for group in _runs(ids):  # rule 1: the same record read twice
        for i in group[1:]:
            forest.union(group[0], i)
            same_id.add(i)
    for group in _runs(usccs):  # rule 2: exact key
        for i in group[1:]:
            forest.union(group[0], i)
    group_uscc: dict[int, set[int]] = {}
    for i in range(n):
        if usccs[i]:
            group_uscc.setdefault(forest.root(i), set()).add(int(usccs[i]))
    for group in _runs(names):  # rule 3: normalised name with compatible credit codes
        roots = {forest.root(i) for i in group}
        codes: set[int] = set()
        for r in roots:
            codes |= group_uscc.get(r, set())
        if len(roots) > 1 and len(codes) <= 1:
            first = min(roots)
            for r in roots:
                forest.union(first, r)
            if codes:
                group_uscc.setdefault(forest.root(first), set()).update(codes)
    members: dict[int, list[int]] = {}
    for i in range(n):
        if i not in same_id:
            members.setdefault(forest.root(i), []).append(i)
    return [g for g in members.values() if len(g) >= 2]


def _ms(raw: Any) -> int | None:
    value, issue = formats.clean_datetime(raw)
    return None if issue or value is None else formats.datetime_to_ms(value)


def index_page(index: CustomerIndex, page: Sequence[CrmRecord]) -> None:
    """Add one page of companies to the index."""
    for record in page:
        props = record.properties
        index.add(record.id, _ms(record.created), _ms(record.modified), props.get("name"), props.get("uscc"))


def describe(pairs: Sequence[tuple[str, str, str]], objects: Mapping[str, Mapping[str, Any]]) -> list[Merge]:
    """Merges with both names and credit codes (as cleaned) from the objects read back."""
    out = []
    for kept, merged, rule in pairs:
        k, m = objects.get(kept) or {}, objects.get(merged) or {}
        out.append(
            Merge(
                kept_id=kept,
                merged_id=merged,
                rule=rule,
                kept_name=formats.clean_text(k.get("name"))[0],
                merged_name=formats.clean_text(m.get("name"))[0],
                kept_uscc=uscc_key(k.get("uscc")) or formats.clean_text(k.get("uscc"))[0],
                merged_uscc=uscc_key(m.get("uscc")) or formats.clean_text(m.get("uscc"))[0],
            )
        )
    return out


# ---------------------------------------------------------------- hub


def record_merges(conn: Connection, run_id: str, entity: str, merges: Sequence[Merge], at: datetime) -> int:
    """Upsert the merges into ``merge_record`` (one row per merged record: a rerun adds nothing)."""
    if not merges:
        return 0
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    rows = [
        {
            "run_id": run_id,
            "entity": entity,
            "kept_id": m.kept_id,
            "merged_id": m.merged_id,
            "rule": m.rule,
            "detail": m.detail(),
            "at": at,
        }
        for m in merges
    ]
    for start in range(0, len(rows), 500):
        stmt = insert(merge_record)
        stmt = stmt.on_conflict_do_update(
            index_elements=[merge_record.c.entity, merge_record.c.merged_id],
            set_={
                "run_id": stmt.excluded.run_id,
                "kept_id": stmt.excluded.kept_id,
                "rule": stmt.excluded.rule,
                "detail": stmt.excluded.detail,
                "at": stmt.excluded.at,
            },
        )
        conn.execute(stmt, rows[start : start + 500])
    return len(rows)


def kept_ids(conn: Connection, entity: str, ids: Iterable[str]) -> dict[str, str]:
    """``{merged id: kept id}`` for the given ids that were merged (by any migration run)."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(merge_record.c.merged_id, merge_record.c.kept_id).where(
                merge_record.c.entity == entity, merge_record.c.merged_id.in_(wanted[start : start + 500])
            )
        )
        found.update({str(m): str(k) for m, k in rows})
    return found


# ---------------------------------------------------------------- work file


def save(path: Path, merges: Sequence[Merge]) -> None:
    """The run's merge decisions, for its chunks and its report (written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(m) for m in merges], ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def load(path: Path) -> list[Merge]:
    if not path.exists():
        return []
    return [Merge.from_json(item) for item in json.loads(path.read_text(encoding="utf-8"))]
