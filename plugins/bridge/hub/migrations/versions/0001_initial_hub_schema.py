"""Initial hub schema: every table of bridge.hub.schema, and the audit chain's genesis head.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written by hand from ``bridge/hub/schema.py`` (revisions never import the
live schema: they must keep describing this point in history).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "watermark",
        sa.Column("stream", sa.String(120), nullable=False),
        sa.Column("value_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("run_id", sa.String(250)),
        sa.PrimaryKeyConstraint("stream", name="pk_watermark"),
    )
    op.create_table(
        "snapshot",
        sa.Column("system", sa.String(8), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("source_modified_ms", sa.BigInteger(), nullable=False),
        sa.Column("data_owner", sa.String(64)),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("system", "entity", "source_id", name="pk_snapshot"),
    )
    op.create_index("ix_snapshot_entity_modified", "snapshot", ["entity", "source_modified_ms"])

    op.create_table(
        "xref",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("link_type", sa.String(30), nullable=False),
        sa.Column("crm_type", sa.String(30), nullable=False),
        sa.Column("crm_id", sa.String(64)),
        sa.Column("oa_type", sa.String(40), nullable=False),
        sa.Column("oa_id", sa.String(64)),
        sa.Column("oa_uuid", sa.String(64)),
        sa.Column("state", sa.JSON()),
        sa.Column("dictionary_version", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("run_id", sa.String(250)),
        sa.PrimaryKeyConstraint("id", name="pk_xref"),
        sa.UniqueConstraint("link_type", "crm_id", "oa_id", name="uq_xref_link"),
    )
    op.create_index("ix_xref_crm", "xref", ["link_type", "crm_id"])
    op.create_index("ix_xref_oa", "xref", ["link_type", "oa_id"])
    op.create_index("ix_xref_uuid", "xref", ["oa_uuid"])

    op.create_table(
        "pending_change",
        sa.Column("direction", sa.String(12), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("direction", "entity", "source_id", name="pk_pending_change"),
    )
    op.create_index("ix_pending_due", "pending_change", ["direction", "due_at"])

    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("open_key", sa.String(160)),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("system", sa.String(8), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("reason_code", sa.String(40), nullable=False),
        sa.Column("field", sa.String(60)),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON()),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("department", sa.String(30)),
        sa.Column("data_owner", sa.String(64)),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("resolved_by", sa.String(120)),
        sa.Column("resolution", sa.String(20)),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
        sa.UniqueConstraint("open_key", name="uq_quarantine_open_key"),
    )
    op.create_index("ix_quarantine_reason", "quarantine", ["reason_code", "resolved_at"])
    op.create_index("ix_quarantine_record", "quarantine", ["entity", "source_id"])

    op.create_table(
        "audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("dag_id", sa.String(250)),
        sa.Column("run_id", sa.String(250)),
        sa.Column("task_id", sa.String(250)),
        sa.Column("try_number", sa.Integer()),
        sa.Column("principal", sa.String(120), nullable=False),
        sa.Column("operation", sa.String(30), nullable=False),
        sa.Column("system", sa.String(8), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("record_ids", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(200)),
        sa.Column("dictionary_version", sa.String(40)),
        sa.Column("policy_version", sa.String(40)),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    # The chain's genesis: the first entry's prev_hash; writers lock this row.
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])

    op.create_table(
        "run_summary",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("task_id", sa.String(250)),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("watermarks", sa.JSON()),
        sa.Column("message", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_run_summary"),
    )
    op.create_index("ix_run_summary_kind", "run_summary", ["kind", "started_at"])

    op.create_table(
        "lease",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("holder", sa.String(250), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_lease"),
    )

    op.create_table(
        "migration_run",
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("report_html", sa.Text()),
        sa.Column("report_csv", sa.Text()),
        sa.Column("counts", sa.JSON()),
        sa.PrimaryKeyConstraint("run_id", name="pk_migration_run"),
    )
    op.create_table(
        "migration_chunk",
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False),
        sa.Column("range_from_ms", sa.BigInteger()),
        sa.Column("range_to_ms", sa.BigInteger()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("counts", sa.JSON()),
        sa.Column("examples", sa.JSON()),
        sa.Column("completed_at", TS),
        sa.PrimaryKeyConstraint("run_id", "entity", "chunk_no", name="pk_migration_chunk"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["migration_run.run_id"],
            name="fk_migration_chunk_run_id_migration_run",
        ),
    )
    op.create_table(
        "merge_record",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("kept_id", sa.String(64), nullable=False),
        sa.Column("merged_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("detail", sa.JSON()),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_merge_record"),
        sa.UniqueConstraint("entity", "merged_id", name="uq_merge_record_merged"),
    )

    op.create_table(
        "health_result",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("suite", sa.String(80), nullable=False),
        sa.Column("expectation", sa.String(120), nullable=False),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("field", sa.String(60)),
        sa.Column("department", sa.String(30)),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("failing_ids", sa.JSON()),
        sa.Column("failing_owners", sa.JSON()),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_health_result"),
    )
    op.create_index("ix_health_result_day", "health_result", ["day", "suite"])
    op.create_table(
        "health_score",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scope_type", sa.String(20), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failed_checks", sa.Integer(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("failed_rows", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(250)),
        sa.PrimaryKeyConstraint("day", "scope_type", "scope", name="pk_health_score"),
    )

    op.create_table(
        "report_run",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("built_at", TS, nullable=False),
        sa.Column("html_path", sa.Text(), nullable=False),
        sa.Column("xlsx_path", sa.Text(), nullable=False),
        sa.Column("recipients", sa.JSON()),
        sa.Column("sent_at", TS),
        sa.Column("figures", sa.JSON()),
        sa.PrimaryKeyConstraint("day", name="pk_report_run"),
    )


def downgrade() -> None:
    for table in (
        "report_run",
        "health_score",
        "health_result",
        "merge_record",
        "migration_chunk",
        "migration_run",
        "lease",
        "run_summary",
        "audit_head",
        "audit_log",
        "quarantine",
        "pending_change",
        "xref",
        "snapshot",
        "watermark",
    ):
        op.drop_table(table)
