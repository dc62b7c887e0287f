"""Event receiver health: table event_health.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Written by hand from ``bridge/hub/schema.py`` (revisions never import the
live schema: they must keep describing this point in history).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "event_health",
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("verified", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("enqueued", sa.BigInteger(), nullable=False),
        sa.Column("last_event_at", TS),
        sa.Column("last_received_at", TS),
        sa.Column("last_verified_at", TS),
        sa.Column("lag_ms", sa.BigInteger()),
        sa.Column("last_poll_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_event_health"),
    )


def downgrade() -> None:
    op.drop_table("event_health")
