"""SQLAlchemy 2 Core schema of the hub database.

One module holds every table; Alembic revisions in ``bridge/hub/migrations``
create and change them. Times are stored as timezone-aware UTC datetimes,
source modification times also as epoch milliseconds (exact, sortable,
what HubSpot and Feishu speak). JSON columns hold canonical records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is timezone-aware UTC on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zone type and would
    hand back naive datetimes, so values are stored as UTC wall-clock time and
    read back with ``tzinfo=UTC``. Naive datetimes are refused: a local time
    mistaken for UTC would move watermarks and debounce deadlines by hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the hub: pass a timezone-aware (UTC) datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


TS = UTCDateTime()

# How far an incremental extract has safely read, per stream
# (e.g. "crm.deal", "oa.expense_claim.created"). Advanced only in the
# transaction that records what it covers.
watermark = Table(
    "watermark",
    metadata,
    Column("stream", String(120), primary_key=True),
    Column("value_ms", BigInteger, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("run_id", String(250)),
)

# The latest canonical state seen of every source record. content_hash covers
# the mapped fields whose system of record is the record's own system only, so
# unmapped edits (notes) and echoes of the bridge's own write-backs do not
# change it.
snapshot = Table(
    "snapshot",
    metadata,
    Column("system", String(8), primary_key=True),  # crm | oa
    Column("entity", String(40), primary_key=True),  # dictionary entity key
    Column("source_id", String(64), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("payload", JSON, nullable=False),  # canonical record
    Column("source_modified_ms", BigInteger, nullable=False),
    Column("data_owner", String(64)),  # owner id / applicant id (谁产生谁负责)
    Column("first_seen_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Index("ix_snapshot_entity_modified", "entity", "source_modified_ms"),
)

# Links between records of the two systems. link_type:
#   owner_user       CRM owner id      ⇄ OA user id
#   deal_project     CRM deal id       ⇄ OA 立项申请 instance code
#   amount_notice    CRM deal id       ⇄ OA 合同金额变更通知 instance code
#   activity         CRM note/meeting  ⇄ OA expense/travel/visit instance code
#   deal_writeback   CRM deal id       (state only: what oa_to_crm last wrote on the deal)
#   company_customer CRM company id    ⇄ OA expense/trip/visit instance code (its customer link)
# state holds what was last sent (e.g. the notified amount, the status written
# back) so a rerun can tell "already done" from "to do".
xref = Table(
    "xref",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("link_type", String(30), nullable=False),
    Column("crm_type", String(30), nullable=False),
    Column("crm_id", String(64)),
    Column("oa_type", String(40), nullable=False),
    Column("oa_id", String(64)),
    Column("oa_uuid", String(64)),
    Column("state", JSON),
    Column("dictionary_version", String(40), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("run_id", String(250)),
    UniqueConstraint("link_type", "crm_id", "oa_id", name="uq_xref_link"),
    Index("ix_xref_crm", "link_type", "crm_id"),
    Index("ix_xref_oa", "link_type", "oa_id"),
    Index("ix_xref_uuid", "oa_uuid"),
)

# Debounce queue: one row per changed record waiting to be written.
pending_change = Table(
    "pending_change",
    metadata,
    Column("direction", String(12), primary_key=True),  # crm_to_oa | oa_to_crm
    Column("entity", String(40), primary_key=True),
    Column("source_id", String(64), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("first_seen_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("due_at", TS, nullable=False),
    Column("changes", Integer, nullable=False, default=1),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_pending_due", "direction", "due_at"),
)

# Records that could not be synced, with the reason. open_key is
# "direction:entity:source_id" while unresolved and NULL once resolved, so
# there is at most one open entry per record on every database.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("open_key", String(160), unique=True),
    Column("direction", String(20), nullable=False),  # crm_to_oa | oa_to_crm | migration | health
    Column("system", String(8), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("reason_code", String(40), nullable=False),
    Column("field", String(60)),
    Column("message", Text, nullable=False),  # Chinese, says what to do
    Column("payload", JSON),  # the record as read (masked when shown)
    Column("content_hash", String(64)),  # source state when quarantined
    Column("department", String(30)),  # owning department of the failing field
    Column("data_owner", String(64)),
    Column("first_seen_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("resolved_at", TS),
    Column("resolved_by", String(120)),
    Column("resolution", String(20)),  # fixed | released
    Index("ix_quarantine_reason", "reason_code", "resolved_at"),
    Index("ix_quarantine_record", "entity", "source_id"),
)

# Append-only, hash-chained audit log. hash = sha256(prev_hash + canonical
# JSON of the entry, seq included); audit_head holds the tip so writers
# serialise on one row (id 1; the first migration inserts it with seq 0 and
# the genesis hash "0" * 64). seq is assigned by bridge.hub.audit under that lock,
# never by the database. See bridge/hub/audit.py.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("task_id", String(250)),
    Column("try_number", Integer),
    Column("principal", String(120), nullable=False),
    Column("operation", String(30), nullable=False),
    Column("system", String(8), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("record_ids", JSON, nullable=False),
    Column("fields", JSON, nullable=False),  # names only, never values
    Column("outcome", String(20), nullable=False),
    Column("detail", String(200)),
    Column("dictionary_version", String(40)),
    Column("policy_version", String(40)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row per DAG run (or task) that moved data: the counts of what it did.
run_summary = Table(
    "run_summary",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("task_id", String(250)),
    # a run kind of bridge.runkinds (crm_to_oa_sync, oa_to_crm_sync, …)
    Column("kind", String(30), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("status", String(20), nullable=False),  # running | success | failed
    Column("counts", JSON, nullable=False),
    Column("watermarks", JSON),
    Column("message", Text),
    Index("ix_run_summary_kind", "kind", "started_at"),
)

# Short leases (e.g. "history_migration") so that two runs cannot work at once.
lease = Table(
    "lease",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("holder", String(250), nullable=False),
    Column("acquired_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)

# ---------------------------------------------------------------- migration
migration_run = Table(
    "migration_run",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("params", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("report_html", Text),
    Column("report_csv", Text),
    Column("counts", JSON),
)

migration_chunk = Table(
    "migration_chunk",
    metadata,
    Column("run_id", String(250), ForeignKey("migration_run.run_id"), primary_key=True),
    Column("entity", String(40), primary_key=True),
    Column("chunk_no", Integer, primary_key=True),
    Column("range_from_ms", BigInteger),
    Column("range_to_ms", BigInteger),
    Column("status", String(20), nullable=False),  # pending | done | failed
    Column("counts", JSON),
    Column("examples", JSON),
    Column("completed_at", TS),
)

# Every de-duplication merge, with both source ids: nothing is dropped silently.
merge_record = Table(
    "merge_record",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(250), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("kept_id", String(64), nullable=False),
    Column("merged_id", String(64), nullable=False),
    Column("rule", String(40), nullable=False),  # exact_key | name_uscc
    Column("detail", JSON),
    Column("at", TS, nullable=False),
    UniqueConstraint("entity", "merged_id", name="uq_merge_record_merged"),
)

# ---------------------------------------------------------------- data health
health_result = Table(
    "health_result",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(250), nullable=False),
    Column("day", Date, nullable=False),
    Column("suite", String(80), nullable=False),
    Column("expectation", String(120), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("field", String(60)),
    Column("department", String(30)),
    Column("success", Boolean, nullable=False),
    Column("evaluated", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("failing_ids", JSON),  # bounded sample of failing record ids
    Column("failing_owners", JSON),  # {data_owner: failed count}
    Column("at", TS, nullable=False),
    Index("ix_health_result_day", "day", "suite"),
)

health_score = Table(
    "health_score",
    metadata,
    Column("day", Date, primary_key=True),
    Column("scope_type", String(20), primary_key=True),  # overall | entity | department | data_owner
    Column("scope", String(80), primary_key=True),
    Column("score", Float, nullable=False),  # 0..100
    Column("checks", Integer, nullable=False),
    Column("failed_checks", Integer, nullable=False),
    Column("evaluated", Integer, nullable=False),
    Column("failed_rows", Integer, nullable=False),
    Column("run_id", String(250)),
)

# ---------------------------------------------------------------- report
report_run = Table(
    "report_run",
    metadata,
    Column("day", Date, primary_key=True),
    Column("run_id", String(250), nullable=False),
    Column("built_at", TS, nullable=False),
    Column("html_path", Text, nullable=False),
    Column("xlsx_path", Text, nullable=False),
    Column("recipients", JSON),
    Column("sent_at", TS),
    Column("figures", JSON),  # headline numbers, for the UI
)

# ---------------------------------------------------------------- kiosk links
# Read-only links for the office wallboard (bridge.ui.kiosk). Only the SHA-256
# of the full token is stored; token_id is the random public half, looked up
# after its HMAC signature checked out. A revoked link stays, with who and when.
kiosk_token = Table(
    "kiosk_token",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scope", String(30), nullable=False),  # wallboard
    Column("label", String(120)),  # where the screen hangs, e.g. 三楼销售区
    Column("created_by", String(120), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
    Column("revoked_by", String(120)),
)

# ---------------------------------------------------------------- event receiver health
# One row per vendor (crm / oa), written by the event receiver (bridge.events):
# totals since the row was created, the last event's own time, when the last
# delivery came and was verified, and the last lag (receipt − event time). The
# sync DAGs' poll gate reads it (silent receiver → poll every minute) and
# stamps last_poll_at when a run goes ahead.
event_health = Table(
    "event_health",
    metadata,
    Column("source", String(8), primary_key=True),
    Column("received", BigInteger, nullable=False, default=0),
    Column("verified", BigInteger, nullable=False, default=0),
    Column("rejected", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("enqueued", BigInteger, nullable=False, default=0),
    Column("last_event_at", TS),
    Column("last_received_at", TS),
    Column("last_verified_at", TS),
    Column("lag_ms", BigInteger),
    Column("last_poll_at", TS),
    Column("updated_at", TS, nullable=False),
)

# ---------------------------------------------------------------- documents (attachments)
# The identity of a file is the SHA-256 of its bytes. ``document`` holds one
# row per distinct content (what it is, never the bytes), ``document_copy``
# one row per file stored in a system (HubSpot file id / Feishu file code),
# ``document_link`` one row per record the content is attached to (a deal or
# company in the CRM, an approval instance in the OA). origin says who put the
# copy there: ``source`` (a person, found by a sync) or ``bridge`` (uploaded
# by the bridge). doc_class is a permissions document class (contract |
# invoice | other).
document = Table(
    "document",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # sniffed from the bytes: pdf, jpeg, png, ofd, docx, …
    Column("doc_class", String(16), nullable=False),
    Column("first_name", String(255), nullable=False),
    Column("first_seen_at", TS, nullable=False),
)

document_copy = Table(
    "document_copy",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("system", String(8), nullable=False),  # crm | oa
    Column("file_ref", String(128), nullable=False),  # HubSpot file id | Feishu file code
    Column("name", String(255), nullable=False),
    Column("origin", String(8), nullable=False),  # source | bridge
    Column("created_at", TS, nullable=False),
    Column("run_id", String(250)),
    UniqueConstraint("system", "file_ref", name="uq_document_copy_ref"),
    Index("ix_document_copy_sha", "sha256", "system"),
)

document_link = Table(
    "document_link",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("system", String(8), nullable=False),  # crm | oa
    Column("record_type", String(40), nullable=False),  # deal | company | <OA form key>
    Column("record_id", String(64), nullable=False),
    Column("via", String(128)),  # the HubSpot note id / the OA widget id that holds it
    Column("company_id", String(64)),  # the CRM customer the record belongs to (documents page)
    Column("created_at", TS, nullable=False),
    Column("run_id", String(250)),
    UniqueConstraint("sha256", "system", "record_type", "record_id", name="uq_document_link"),
    Index("ix_document_link_company", "company_id"),
)

# ---------------------------------------------------------------- customer journey (issue 20)
# Stage history of CRM deals, as the journey marts see it (bridge.journey.marts.record_stage_changes): one row
# each time a deal is seen in a stage other than its last recorded one. entered_ms is the deal's source
# modification time of the first snapshot that shows the stage (basis "snapshot"; "first_seen" for the first
# stage the bridge saw of a deal), or HubSpot's own timestamp when the CRM hands out property history
# (basis "history").
deal_stage_history = Table(
    "deal_stage_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deal_id", String(64), nullable=False),
    Column("stage", String(40)),  # canonical stage; NULL: the deal had none
    Column("entered_ms", BigInteger, nullable=False),
    Column("basis", String(12), nullable=False),  # first_seen | snapshot | history
    Column("recorded_at", TS, nullable=False),
    UniqueConstraint("deal_id", "entered_ms", "stage", name="uq_deal_stage_history"),
    Index("ix_deal_stage_history_deal", "deal_id", "entered_ms"),
)
