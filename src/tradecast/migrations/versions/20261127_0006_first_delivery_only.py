"""deliveries keep the first delivery only

A poll that hands a device a signal it was already given writes nothing:
``last_delivered_at`` and ``delivery_count`` are dropped, ``first_delivered_at``
(what the SPEC asks to record, and what reconciliation reads) stays.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("delivery_count")
        batch.drop_column("last_delivered_at")


def downgrade() -> None:
    # The counts are gone; each delivery comes back as delivered once, when first given.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("last_delivered_at", TS, nullable=True))
        batch.add_column(
            sa.Column("delivery_count", sa.Integer(), nullable=False, server_default="1")
        )
    op.execute("UPDATE deliveries SET last_delivered_at = first_delivered_at")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("last_delivered_at", existing_type=TS, nullable=False)
        batch.alter_column("delivery_count", existing_type=sa.Integer(), server_default=None)
