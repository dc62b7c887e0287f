"""Customer journey: table deal_stage_history (stage changes of CRM deals, for stage durations).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Written by hand from ``bridge/hub/schema.py`` (revisions never import the
live schema: they must keep describing this point in history).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deal_stage_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deal_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(40)),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.Column("basis", sa.String(12), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deal_stage_history"),
        sa.UniqueConstraint("deal_id", "entered_ms", "stage", name="uq_deal_stage_history"),
    )
    op.create_index("ix_deal_stage_history_deal", "deal_stage_history", ["deal_id", "entered_ms"])


def downgrade() -> None:
    op.drop_index("ix_deal_stage_history_deal", table_name="deal_stage_history")
    op.drop_table("deal_stage_history")
