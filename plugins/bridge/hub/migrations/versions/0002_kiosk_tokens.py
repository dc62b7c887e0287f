"""Kiosk links of the wallboard: table kiosk_token.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

Written by hand from ``bridge/hub/schema.py`` (revisions never import the
live schema: they must keep describing this point in history).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "kiosk_token",
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(30), nullable=False),
        sa.Column("label", sa.String(120)),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_by", sa.String(120)),
        sa.PrimaryKeyConstraint("token_id", name="pk_kiosk_token"),
        sa.UniqueConstraint("token_hash", name="uq_kiosk_token_token_hash"),
    )


def downgrade() -> None:
    op.drop_table("kiosk_token")
