"""deliveries: a partial index of what each device has settled

Every poll reads the device's settled signals to leave them out of its
answer. With this index that is one index-only range scan per poll (and per
device in a woken batch) instead of a heap visit for every open signal.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_settled",
        "deliveries",
        ["device_id", "signal_id"],
        postgresql_where=sa.text("settled_at IS NOT NULL"),
        sqlite_where=sa.text("settled_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_settled", table_name="deliveries")
