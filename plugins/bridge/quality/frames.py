"""Compact pandas frames of the hub's snapshots, one per entity, with one column per check.

Snapshots are streamed in batches (the filters of ``store.iter_snapshots``,
three columns only) and reduced row by
row to what the checks need: a presence flag per required field, a
format-verdict flag per format rule (evaluated on the offending source value
from ``_invalid`` when there is one, else on the clean value, with the
dictionary's own cleaners), the value of each enum field, a normalised key per
unique field. Flags are kept one byte per row (``array('b')``) until the frame
is built, so 1,000,000 deals fit in a few hundred MB. Values that identify a
person (phones, e-mails) never enter a frame: only their verdicts do, so the
Data Docs cannot show them.

pandas is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import re
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Text, cast, func, select

from bridge.dictionary import Dictionary
from bridge.dictionary.formats import FORMAT_CLEANERS, normalize_company_name
from bridge.hub import store
from bridge.hub.schema import merge_record, quarantine, snapshot
from bridge.quality.checks import (
    AMOUNTS_FRAME,
    CLOSED_STATUSES,
    ID_COLUMN,
    LINKS_FRAME,
    ORPHAN_LINK_TYPES,
    ORPHANS_FRAME,
    OWNER_COLUMN,
    QUARANTINE_FRAME,
    SYNC_FRAME,
    Check,
)
from bridge.staging import INVALID_KEY
from bridge.sync.freshness import SyncFreshness, sync_freshness

if TYPE_CHECKING:
    import pandas as pd

NO_OWNER = "-"  # data owner of records that have none
TRUE, FALSE, NA = 1, 0, -1
MEMO_LIMIT = 200_000
NEVER_MINUTES = 999_999.0  # age of a sync that never succeeded
YEAR_RANGE = (1900, 2200)  # bridge.dictionary.formats: years outside are rejected
FACT_ENTITIES = ("project_initiation", "contract_amount_notice")  # read whole for the cross-system checks


@dataclass
class Frame:
    """One GX data asset: the dataframe and what it cost to build."""

    name: str
    data: pd.DataFrame
    total_rows: int  # rows of the table in the hub (before sampling)
    read_rows: int  # rows streamed
    seconds: float
    sampled: bool = False


@dataclass
class ProjectLink:
    """A 立项申请 as the cross-system checks need it."""

    instance_code: str
    deal_id: str | None
    contract_amount: str | None
    status: str | None
    applicant: str | None


@dataclass
class AmountNotice:
    deal_id: str
    new_amount: str | None
    created_at: str  # canonical datetime: ISO strings of one format sort in time order
    status: str | None


@dataclass
class CrossFacts:
    """Facts one entity pass collects for the cross-system checks (never sampled)."""

    projects: list[ProjectLink] = field(default_factory=list)
    latest_notice: dict[str, AmountNotice] = field(default_factory=dict)


# ---------------------------------------------------------------- verdicts
_CANONICAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00")


def canonical_datetime_ok(value: str) -> bool | None:
    """The ``datetime_tz`` verdict of a value in the canonical form (UTC, milliseconds), else None.

    Same answer as ``clean_datetime`` for that one shape (it parses it with
    ``fromisoformat`` and checks the year), without its general parsing: the
    clean datetimes of a hub are all in this shape and all different, so a
    memo does not help them. Tested against the cleaner.
    """
    if len(value) != 29 or not _CANONICAL_DATETIME.fullmatch(value):
        return None
    try:
        year = datetime.fromisoformat(value).year
    except ValueError:
        return False
    return YEAR_RANGE[0] <= year <= YEAR_RANGE[1]


class FormatVerdicts:
    """``rule(value) -> ok`` with the dictionary's cleaners, memoised (dates and amounts repeat a lot)."""

    def __init__(self, cleaners: Mapping[str, Callable[[object], Any]] = FORMAT_CLEANERS) -> None:
        self.cleaners = cleaners
        self.memo: dict[str, dict[object, bool]] = {}

    def ok(self, rule: str, value: object) -> bool:
        if rule == "datetime_tz" and type(value) is str and self.cleaners is FORMAT_CLEANERS:
            fast = canonical_datetime_ok(value)
            if fast is not None:
                return fast
        memo = self.memo.setdefault(rule, {})
        key = value if isinstance(value, str | int | float) else repr(value)
        hit = memo.get(key)
        if hit is not None:
            return hit
        cleaner = self.cleaners.get(rule)
        if cleaner is None:
            raise KeyError(f"unknown format rule {rule!r}; known: {', '.join(self.cleaners)}")
        cleaned, issue = cleaner(value)
        verdict = issue is None and cleaned is not None
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[key] = verdict
        return verdict


def sample_keep(source_id: str, fraction: float) -> bool:
    """Deterministic sampling: the same records are picked every day, so daily scores compare."""
    return fraction >= 1.0 or zlib.crc32(source_id.encode("utf-8")) < fraction * 4_294_967_296


def _flags(values: array) -> Any:
    import numpy as np
    import pandas as pd

    raw = np.frombuffer(values, dtype=np.int8) if len(values) else np.zeros(0, dtype=np.int8)
    return pd.arrays.BooleanArray(raw == TRUE, raw == NA)


def _categories(values: list[str | None]) -> Any:
    import pandas as pd

    return pd.Categorical(values)


class Codes:
    """A categorical column built row by row: 4 bytes per row, one string object per distinct value."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.codes = array("i")

    def add(self, value: str | None) -> None:
        if value is None:
            self.codes.append(-1)
            return
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.index)
        self.codes.append(code)

    def categorical(self) -> Any:
        import numpy as np
        import pandas as pd

        codes = np.frombuffer(self.codes, dtype=np.int32) if len(self.codes) else np.zeros(0, dtype=np.int32)
        return pd.Categorical.from_codes(codes, categories=list(self.index))


# ---------------------------------------------------------------- entity frames
class EntityRows:
    """Accumulates the check columns of one entity, row by row (pure; no I/O)."""

    def __init__(self, d: Dictionary, entity: str, checks: Sequence[Check],
                 company_ids: set[str] | None = None, verdicts: FormatVerdicts | None = None,
                 merged_company_ids: frozenset[str] = frozenset()) -> None:
        self.d = d
        self.entity = entity
        self.checks = [c for c in checks if c.frame == entity]
        self.company_ids = company_ids if company_ids is not None else set()
        self.merged_company_ids = merged_company_ids
        self.verdicts = verdicts or FormatVerdicts()
        self.ids: list[str] = []
        self.owners = Codes()
        self.flag_cols: dict[str, array] = {}
        self.value_cols: dict[str, Codes] = {}
        self.key_cols: dict[str, list[str | None]] = {}
        self._required: list[tuple[str, array]] = []
        self._formats: list[tuple[str, str, array]] = []
        self._values: list[tuple[str, Codes]] = []
        self._keys: list[tuple[str, bool, list[str | None]]] = []
        self._customer: array | None = None
        self._company_live: array | None = None
        self._company_associated: array | None = None
        self._deal_ids: list[str | None] | None = None
        self._deal_closed: list[bool] = []  # per row of _deal_ids: the 立项申请 no longer claims its deal
        self._dup: tuple[list[str | None], list[str | None]] | None = None
        fields = d.entity(entity).fields
        for c in self.checks:
            if c.kind == "required":
                self._required.append((c.field or "", self._flag(c.column)))
            elif c.kind == "format":
                self._formats.append((c.field or "", c.rule or "", self._flag(c.column)))
            elif c.kind == "value_map":
                self._values.append((c.field or "", self._value(c.column)))
            elif c.kind == "unique":
                keys = self.key_cols.setdefault(c.column, [])
                self._keys.append((c.field or "", fields[c.field or ""].format is None, keys))
            elif c.kind == "customer_exists":
                self._customer = self._flag(c.column)
            elif c.kind == "company_live":
                self._company_live = self._flag(c.column)
            elif c.kind == "company_associated":
                self._company_associated = self._flag(c.column)
            elif c.kind == "deal_exists":
                self._flag(c.column)  # filled by resolve_deals() once the pass is over
                self._deal_ids = []
            elif c.kind == "duplicate_customer":
                self._dup = ([], [])

    def _flag(self, column: str) -> array:
        return self.flag_cols.setdefault(column, array("b"))

    def _value(self, column: str) -> Codes:
        return self.value_cols.setdefault(column, Codes())

    def add(self, source_id: str, data_owner: str | None, payload: Mapping[str, Any]) -> None:
        """One snapshot's payload (canonical record + ``_invalid``)."""
        invalid = payload.get(INVALID_KEY) or {}
        if not isinstance(invalid, Mapping):
            invalid = {}
        self.ids.append(source_id)
        self.owners.add(data_owner or NO_OWNER)
        for name, flags in self._required:
            flags.append(TRUE if payload.get(name) is not None or name in invalid else NA)
        for name, rule, flags in self._formats:
            value = invalid[name] if name in invalid else payload.get(name)
            if value is None:
                flags.append(NA)
            else:
                flags.append(TRUE if self.verdicts.ok(rule, value) else FALSE)
        for name, values in self._values:
            value = invalid[name] if name in invalid else payload.get(name)
            values.add(None if value is None else str(value))
        row_keys: dict[str, str | None] = {}
        for name, normalise, keys in self._keys:
            value = payload.get(name)
            key = None if value is None else (normalize_company_name(str(value)) if normalise else str(value))
            keys.append(key)
            row_keys[name] = key
        if self._customer is not None:
            customer = payload.get("customer_id")
            self._customer.append(TRUE if customer is not None and str(customer) in self.company_ids else FALSE)
        if self._company_live is not None:
            self._company_live.append(self._company_verdict(payload.get("company_id")))
        if self._company_associated is not None:
            company = payload.get("company_id")
            # a company merged away still leaves the contact associated (to the survivor); a deleted one does not
            known = company is not None and (str(company) in self.company_ids or str(company) in self.merged_company_ids)
            self._company_associated.append(TRUE if known else FALSE)
        if self._deal_ids is not None:
            deal = payload.get("deal_id")
            self._deal_ids.append(None if deal is None else str(deal))
            self._deal_closed.append(_text(payload.get("approval_status")) in CLOSED_STATUSES)
        if self._dup is not None:
            company_name, uscc = payload.get("name"), payload.get("uscc")
            name_key = row_keys["name"] if "name" in row_keys else (
                normalize_company_name(str(company_name)) if company_name is not None else None)
            self._dup[0].append(name_key)  # the same string objects as the unique-name column
            self._dup[1].append(row_keys["uscc"] if "uscc" in row_keys else (None if uscc is None else str(uscc)))

    def _company_verdict(self, company: object) -> int:
        """No company: not evaluated (the ``required`` check's business); else live = in the CRM, not merged."""
        if company is None:
            return NA
        key = str(company)
        return TRUE if key in self.company_ids and key not in self.merged_company_ids else FALSE

    @property
    def needs_deals(self) -> bool:
        return self._deal_ids is not None

    def ids_naming(self, deals: Set[str]) -> list[str]:
        """The records whose ``deal_id`` is one of ``deals``."""
        return [sid for sid, deal in zip(self.ids, self._deal_ids or (), strict=False) if deal in deals]

    def referenced_deals(self) -> set[str]:
        return {x for x in self._deal_ids or () if x is not None}

    def resolve_deals(self, existing: set[str], archived: Set[str] = frozenset(),
                      linked: Set[str] = frozenset()) -> None:
        """Fill the ``deal_exists`` column once the referenced deals have been looked up.

        A deal archived in the CRM (``archived``: tombstoned) is not judged here when the 立项申请 no longer
        claims it (withdrawn, rejected, deleted, revoked) or when the bridge links the two (``linked``: the
        orphaned-link check judges the link); otherwise it fails like a missing deal.
        """
        if self._deal_ids is None:
            return
        column = next(c.column for c in self.checks if c.kind == "deal_exists")
        flags = self.flag_cols[column]
        for source_id, deal, closed in zip(self.ids, self._deal_ids, self._deal_closed, strict=True):
            if deal is None or (deal in archived and (closed or source_id in linked)):
                flags.append(NA)
            else:
                flags.append(TRUE if deal in existing else FALSE)
        self._deal_ids = None

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        data: dict[str, Any] = {
            ID_COLUMN: pd.array(self.ids, dtype="string"),
            OWNER_COLUMN: self.owners.categorical(),
        }
        for column, flags in self.flag_cols.items():
            data[column] = _flags(flags)
        for column, codes in self.value_cols.items():
            data[column] = codes.categorical()
        for column, keys in self.key_cols.items():
            data[column] = pd.array(keys, dtype="string")
        if self._dup is not None:
            data["customer_key"] = pd.array(duplicate_clusters(self.ids, *self._dup), dtype="string")
        return pd.DataFrame(data)


def duplicate_clusters(ids: Sequence[str], names: Sequence[str | None], usccs: Sequence[str | None]) -> list[str]:
    """Per record, the id of its customer cluster: records sharing a normalised name or a USCC are one customer.

    Union-find over both keys, so a chain (A~B by name, B~C by credit code) is one cluster.
    """
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in (names, usccs):
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key is None:
                continue
            j = first.setdefault(key, i)
            if j != i:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return [ids[root(i)] for i in range(len(ids))]


def stream_payloads(conn: Connection, system: str, entity: str, batch: int) -> Iterator[list[tuple[str, str | None, Any]]]:
    """(source id, data owner, payload JSON text) of the entity's live, non-archived snapshots, in batches.

    The filters of ``store.iter_snapshots`` with only the three columns the
    checks read, no ordering, and the payload left as text so that rows a
    sample skips are never decoded: about 3x faster than full ``Snapshot``
    rows at a million records. Server-side cursor on PostgreSQL (keep the
    transaction open while iterating).
    """
    query = select(snapshot.c.source_id, snapshot.c.data_owner, cast(snapshot.c.payload, Text)).where(
        snapshot.c.system == system, snapshot.c.entity == entity,
        snapshot.c.deleted.is_(False), snapshot.c.archived.is_(False),
    )
    result = conn.execute(query.execution_options(yield_per=batch))
    for part in result.partitions(batch):
        yield [(r[0], r[1], r[2]) for r in part]


def _decode(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    try:
        value = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, Mapping) else {}


def _count(conn: Connection, system: str, entity: str, include_archived: bool) -> int:
    query = select(func.count()).select_from(snapshot).where(
        snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.deleted.is_(False)
    )
    if not include_archived:
        query = query.where(snapshot.c.archived.is_(False))
    return int(conn.execute(query).scalar_one())


def merged_ids(conn: Connection, entity: str) -> frozenset[str]:
    """Ids of CRM records merged into another (``merge_record``): they live on only as their survivor."""
    rows = conn.execute(select(merge_record.c.merged_id).where(merge_record.c.entity == entity))
    return frozenset(r[0] for r in rows)


MERGED_INTO = "merged_into"  # in a tombstone: the survivor of a merge made in the CRM (sync and migration)


def merged_away_ids(conn: Connection, entity: str) -> frozenset[str]:
    """:func:`merged_ids` plus the records tombstoned as merged in the CRM (their stone names the survivor):
    the CRM → OA sync remaps a merge without a ``merge_record`` row. Only tombstoned payloads are read."""
    rows = conn.execute(select(snapshot.c.source_id, snapshot.c.payload).where(
        snapshot.c.system == "crm", snapshot.c.entity == entity, snapshot.c.deleted.is_(True)))
    stoned = {str(sid) for sid, payload in rows
              if isinstance(payload, Mapping) and isinstance(payload.get(store.TOMBSTONE_KEY), Mapping)
              and payload[store.TOMBSTONE_KEY].get(MERGED_INTO)}
    return merged_ids(conn, entity) | stoned


def existing_ids(conn: Connection, system: str, entity: str) -> set[str]:
    """Ids of the entity's live snapshots (archived ones included: an archived customer still exists)."""
    rows = conn.execute(
        select(snapshot.c.source_id).where(
            snapshot.c.system == system, snapshot.c.entity == entity, snapshot.c.deleted.is_(False)
        )
    )
    return {r[0] for r in rows}


@dataclass(frozen=True)
class EntityReading:
    """How one run reads every entity into its frame: the sample size and batch, and what the frames share.

    ``max_rows`` > 0 keeps a deterministic sample of about that many rows per entity; ``company_ids``,
    ``merged_company_ids``, ``facts`` and ``verdicts`` are the run's memos (existing companies, companies merged
    away, cross-system facts, format verdicts).
    """

    max_rows: int = 0
    batch: int = 5000
    company_ids: set[str] | None = None
    merged_company_ids: frozenset[str] = frozenset()
    facts: CrossFacts | None = None
    verdicts: FormatVerdicts | None = None


def entity_frame(
    conn: Connection,
    d: Dictionary,
    entity: str,
    checks: Sequence[Check],
    reading: EntityReading = EntityReading(),
) -> Frame:
    """Stream the entity's live, non-archived snapshots into its check frame.

    With a sample (``reading.max_rows``) every row is still read: the cross-system facts are never sampled.
    """
    started = time.perf_counter()
    system = d.entity(entity).system
    total = _count(conn, system, entity, include_archived=False)
    max_rows, facts = reading.max_rows, reading.facts
    fraction = 1.0 if max_rows <= 0 or total <= max_rows else max_rows / total
    rows = EntityRows(d, entity, checks, company_ids=reading.company_ids, verdicts=reading.verdicts,
                      merged_company_ids=reading.merged_company_ids)
    read = 0
    needs_facts = facts is not None and entity in FACT_ENTITIES
    for part in stream_payloads(conn, system, entity, reading.batch):
        for source_id, data_owner, raw in part:
            read += 1
            keep = fraction >= 1.0 or sample_keep(source_id, fraction)
            if not keep and not needs_facts:
                continue  # skipped by the sample: not even decoded
            payload = _decode(raw)
            if needs_facts and facts is not None:
                collect_facts(facts, entity, source_id, data_owner, payload)
            if keep:
                rows.add(source_id, data_owner, payload)
    if rows.needs_deals:
        wanted = rows.referenced_deals()
        deals = crm_record_states(conn, "deal", wanted) if wanted else {}
        archived = {k for k, s in deals.items() if s.deleted}
        linked = set(store.links_for_oa_ids(conn, "deal_project", rows.ids_naming(archived))) if archived else set()
        rows.resolve_deals({k for k, s in deals.items() if not s.deleted}, archived, linked)
    return Frame(entity, rows.frame(), total, read, time.perf_counter() - started, sampled=fraction < 1.0)


def collect_facts(facts: CrossFacts, entity: str, source_id: str, data_owner: str | None,
                  payload: Mapping[str, Any]) -> None:
    """Remember what the CRM/OA consistency checks need from this record."""
    if entity == "project_initiation":
        facts.projects.append(ProjectLink(
            instance_code=source_id,
            deal_id=_text(payload.get("deal_id")),
            contract_amount=_text(payload.get("contract_amount")),
            status=_text(payload.get("approval_status")),
            applicant=data_owner,
        ))
    elif entity == "contract_amount_notice":
        deal = _text(payload.get("deal_id"))
        status = _text(payload.get("approval_status"))
        if deal is None or status in CLOSED_STATUSES:
            return
        notice = AmountNotice(deal, _text(payload.get("new_amount")), str(payload.get("created_at") or ""), status)
        current = facts.latest_notice.get(deal)
        if current is None or notice.created_at >= current.created_at:
            facts.latest_notice[deal] = notice


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------- cross frames
def links_frame(conn: Connection) -> Frame:
    """One row per 立项申请 ⇄ deal link (xref ``deal_project``): complete = both sides, and the deal exists."""
    import pandas as pd

    started = time.perf_counter()
    links = store.links(conn, "deal_project")
    deals = store.get_snapshots(conn, "crm", "deal", {lk.crm_id for lk in links if lk.crm_id})
    projects = store.get_snapshots(conn, "oa", "project_initiation", {lk.oa_id for lk in links if lk.oa_id})
    ids: list[str] = []
    owners: list[str] = []
    flags = array("b")
    for lk in links:
        deal = deals.get(lk.crm_id) if lk.crm_id else None
        project = projects.get(lk.oa_id) if lk.oa_id else None
        ids.append(lk.crm_id or lk.oa_id or f"xref:{lk.id}")
        owner = (deal.data_owner if deal is not None else None) or (project.data_owner if project else None)
        owners.append(owner or NO_OWNER)
        if deal is not None and deal.deleted:
            flags.append(NA)  # archived in the CRM: the orphaned-link check's business
            continue
        complete = bool(lk.crm_id and lk.oa_id and deal is not None)
        flags.append(TRUE if complete else FALSE)
    data = pd.DataFrame({
        ID_COLUMN: pd.array(ids, dtype="string"),
        OWNER_COLUMN: _categories(list(owners)),
        "link__complete": _flags(flags),
    })
    return Frame(LINKS_FRAME, data, len(links), len(links), time.perf_counter() - started)


@dataclass(frozen=True)
class CrmRecordState:
    """What the orphaned-link check needs of a CRM record: its data owner and whether it was archived."""

    data_owner: str | None
    deleted: bool


def crm_record_states(conn: Connection, entity: str, ids: Iterable[str]) -> dict[str, CrmRecordState]:
    """Owner and tombstone flag of the CRM records the hub has among ``ids`` (no payloads read)."""
    wanted = sorted(set(ids))
    found: dict[str, CrmRecordState] = {}
    for start in range(0, len(wanted), store.BATCH):
        rows = conn.execute(
            select(snapshot.c.source_id, snapshot.c.data_owner, snapshot.c.deleted).where(
                snapshot.c.system == "crm", snapshot.c.entity == entity,
                snapshot.c.source_id.in_(wanted[start:start + store.BATCH]),
            )
        )
        found.update({r[0]: CrmRecordState(r[1], bool(r[2])) for r in rows})
    return found


def orphans_frame(conn: Connection) -> Frame:
    """One row per xref link of :data:`ORPHAN_LINK_TYPES` whose CRM record the hub has.

    Column ``<entity>__link_live`` (NA on the rows of another entity): False when the link carries no
    ``archived`` mark (the sync's, once it settled the record's 立项申请) and the record was archived in the CRM
    (tombstoned: by the archived sweep, by a merge the sync remapped, by the history migration) or merged into
    another (``merge_record``: the migration's CRM merges and de-duplication) while the link still names it.
    """
    import pandas as pd

    started = time.perf_counter()
    entities = list(dict.fromkeys(ORPHAN_LINK_TYPES.values()))
    ids: list[str] = []
    owners: list[str] = []
    columns = {e: array("b") for e in entities}
    total = 0
    for link_type, entity in ORPHAN_LINK_TYPES.items():
        links = [lk for lk in store.links(conn, link_type) if lk.crm_id]
        total += len(links)
        states = crm_record_states(conn, entity, {lk.crm_id or "" for lk in links})
        merged = merged_ids(conn, entity)
        for lk in links:
            crm_id = lk.crm_id or ""
            state = states.get(crm_id)
            if state is None:
                continue  # a CRM record the hub never saw: the link checks' business
            marked = bool((lk.state or {}).get("archived"))
            # marked: the sync settled the record's end (an archived deal's or a merged-away deal's 立项申请
            # withdrawn or reported, the link kept as the trace); unmarked, a link on a record archived or
            # merged away (CRM merges the migration recorded, the de-duplication's) is orphaned
            live = marked or (crm_id not in merged and not state.deleted)
            ids.append(crm_id)
            owners.append(state.data_owner or NO_OWNER)
            for other, flags in columns.items():
                flags.append((TRUE if live else FALSE) if other == entity else NA)
    data: dict[str, Any] = {ID_COLUMN: pd.array(ids, dtype="string"), OWNER_COLUMN: _categories(list(owners))}
    data.update({f"{e}__link_live": _flags(flags) for e, flags in columns.items()})
    return Frame(ORPHANS_FRAME, pd.DataFrame(data), total, total, time.perf_counter() - started)


def _amount(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except (InvalidOperation, ValueError):
        return None


def amounts_frame(conn: Connection, facts: CrossFacts) -> Frame:
    """One row per live 立项申请 ⇄ deal pair: does the CRM amount equal the OA amount?

    The OA amount is the ``new_amount`` of the deal's latest live 合同金额变更通知
    when there is one, else the 立项申请's own ``contract_amount``. Pairs come from
    the 立项申请's deal id and from the ``deal_project`` xref links.
    """
    import pandas as pd

    started = time.perf_counter()
    projects = {p.instance_code: p for p in facts.projects}
    pairs: dict[tuple[str, str], ProjectLink] = {}
    for p in facts.projects:
        if p.deal_id:
            pairs[(p.deal_id, p.instance_code)] = p
    for lk in store.links(conn, "deal_project"):
        if lk.crm_id and lk.oa_id and lk.oa_id in projects:
            pairs.setdefault((lk.crm_id, lk.oa_id), projects[lk.oa_id])
    live = {key: p for key, p in pairs.items() if p.status not in CLOSED_STATUSES}
    deals = store.get_snapshots(conn, "crm", "deal", {deal for deal, _ in live})
    ids: list[str] = []
    owners: list[str] = []
    instances: list[str] = []
    flags = array("b")
    for (deal_id, code), p in sorted(live.items()):
        deal = deals.get(deal_id)
        if deal is None or deal.deleted:
            continue  # a missing deal is the link checks' business
        notice = facts.latest_notice.get(deal_id)
        oa = _amount(notice.new_amount if notice is not None else p.contract_amount)
        crm = _amount(_text(deal.payload.get("contract_amount")))
        ids.append(deal_id)
        instances.append(code)
        owners.append(deal.data_owner or NO_OWNER)
        flags.append(NA if oa is None or crm is None else (TRUE if oa == crm else FALSE))
    data = pd.DataFrame({
        ID_COLUMN: pd.array(ids, dtype="string"),
        OWNER_COLUMN: _categories(list(owners)),
        "instance_code": pd.array(instances, dtype="string"),
        "contract_amount__matches": _flags(flags),
    })
    return Frame(AMOUNTS_FRAME, data, len(pairs), len(pairs), time.perf_counter() - started)


def sync_frame(conn: Connection, directions: Iterable[str],
               now: datetime) -> tuple[Frame, dict[str, SyncFreshness]]:
    """One row: the lag of each sync direction in minutes (``NEVER_MINUTES`` when it never succeeded).

    The lag is :attr:`SyncFreshness.lag_minutes`: the larger of the minutes
    since the last successful run and the minutes the oldest unsent change
    has waited, the notion the daily report shows too.
    """
    import pandas as pd

    started = time.perf_counter()
    found = sync_freshness(conn, now, directions)
    data: dict[str, Any] = {ID_COLUMN: pd.array(["sync"], dtype="string"), OWNER_COLUMN: [NO_OWNER]}
    for direction, fresh in found.items():
        lag = fresh.lag_minutes
        data[f"{direction}__age_minutes"] = [NEVER_MINUTES if lag is None else lag]
    return Frame(SYNC_FRAME, pd.DataFrame(data), 1, 1, time.perf_counter() - started), found


@dataclass(frozen=True)
class Backlog:
    """Open quarantine entries by reason, with the owners, departments and oldest examples."""

    open_by_reason: dict[str, int]
    owners: dict[str, dict[str, int]]  # reason -> {data_owner: count}
    departments: dict[str, dict[str, int]]  # reason -> {department: count}
    examples: dict[str, list[str]]  # reason -> source ids, oldest first


def quarantine_backlog(conn: Connection, reasons: Iterable[str], examples: int) -> Backlog:
    """The open backlog (``store.quarantine_backlog``) plus who holds it; examples only where there is a backlog."""
    counts = store.quarantine_backlog(conn)
    owners: dict[str, dict[str, int]] = {}
    departments: dict[str, dict[str, int]] = {}
    open_rows = quarantine.c.resolved_at.is_(None)
    for reason, owner, n in conn.execute(
        select(quarantine.c.reason_code, quarantine.c.data_owner, func.count())
        .where(open_rows).group_by(quarantine.c.reason_code, quarantine.c.data_owner)
    ):
        owners.setdefault(reason, {})[owner or NO_OWNER] = int(n)
    for reason, dept, n in conn.execute(
        select(quarantine.c.reason_code, quarantine.c.department, func.count())
        .where(open_rows).group_by(quarantine.c.reason_code, quarantine.c.department)
    ):
        departments.setdefault(reason, {})[dept or NO_OWNER] = int(n)
    sample: dict[str, list[str]] = {}
    for reason in counts:
        rows = conn.execute(
            select(quarantine.c.source_id).where(open_rows, quarantine.c.reason_code == reason)
            .order_by(quarantine.c.first_seen_at, quarantine.c.id).limit(examples)
        )
        sample[reason] = [r[0] for r in rows]
    opened = {reason: int(counts.get(reason, 0)) for reason in sorted({*reasons, *counts})}
    return Backlog(opened, owners, departments, sample)


def quarantine_frame(backlog: Backlog) -> Frame:
    import pandas as pd

    data: dict[str, Any] = {ID_COLUMN: pd.array(["quarantine"], dtype="string"), OWNER_COLUMN: [NO_OWNER]}
    for reason, n in backlog.open_by_reason.items():
        data[f"{reason}__open"] = [n]
    total = sum(backlog.open_by_reason.values())
    return Frame(QUARANTINE_FRAME, pd.DataFrame(data), total, total, 0.0)
