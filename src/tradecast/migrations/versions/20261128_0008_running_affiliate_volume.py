"""affiliates: the 30-day referred volume, kept running

Each fill of a referred user read the sum of every commission of the last 30
days; for a busy affiliate that grew to thousands of rows a fill, all under the
affiliate's lock. ``volume`` now holds Σ notional of the earned commissions
created after ``volume_after``, moved forward by each fill. Existing affiliates
start with ``volume_after`` NULL: their first fill sums the window once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
AMOUNT = sa.Numeric(38, 16).with_variant(sa.String(40), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("affiliates") as batch:
        batch.add_column(sa.Column("volume", AMOUNT, nullable=False, server_default="0"))
        batch.add_column(sa.Column("volume_after", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("affiliates") as batch:
        batch.drop_column("volume_after")
        batch.drop_column("volume")
