"""Documents (attachments): tables document, document_copy, document_link.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Written by hand from ``bridge/hub/schema.py`` (revisions never import the
live schema: they must keep describing this point in history).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "document",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("doc_class", sa.String(16), nullable=False),
        sa.Column("first_name", sa.String(255), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_document"),
    )
    op.create_table(
        "document_copy",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("system", sa.String(8), nullable=False),
        sa.Column("file_ref", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("run_id", sa.String(250)),
        sa.PrimaryKeyConstraint("id", name="pk_document_copy"),
        sa.UniqueConstraint("system", "file_ref", name="uq_document_copy_ref"),
    )
    op.create_index("ix_document_copy_sha", "document_copy", ["sha256", "system"])
    op.create_table(
        "document_link",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("system", sa.String(8), nullable=False),
        sa.Column("record_type", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("via", sa.String(128)),
        sa.Column("company_id", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("run_id", sa.String(250)),
        sa.PrimaryKeyConstraint("id", name="pk_document_link"),
        sa.UniqueConstraint("sha256", "system", "record_type", "record_id", name="uq_document_link"),
    )
    op.create_index("ix_document_link_company", "document_link", ["company_id"])


def downgrade() -> None:
    op.drop_index("ix_document_link_company", table_name="document_link")
    op.drop_table("document_link")
    op.drop_index("ix_document_copy_sha", table_name="document_copy")
    op.drop_table("document_copy")
    op.drop_table("document")
