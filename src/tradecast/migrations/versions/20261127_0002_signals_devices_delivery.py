"""producers, devices, signals, approvals, deliveries and used nonces

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
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
# Exact decimals: NUMERIC on PostgreSQL, the decimal text on SQLite (see db.ExactDecimal).
PRICE = sa.Numeric(20, 8).with_variant(sa.String(22), "sqlite")


def _enum_check(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}"))


def upgrade() -> None:
    op.create_table(
        "used_nonces",
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "nonce", name=op.f("pk_used_nonces")),
    )
    op.create_index(op.f("ix_used_nonces_expires_at"), "used_nonces", ["expires_at"])

    op.create_table(
        "producers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("secret_sealed", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deactivated_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_producers")),
        sa.UniqueConstraint("name", name=op.f("uq_producers_name")),
    )

    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_name", sa.String(64), nullable=False),
        sa.Column("secret_sealed", sa.String(255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_poll", TS, nullable=True),
        sa.Column("last_ack", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_devices_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_user_id"), "devices", ["user_id"])
    op.create_index(
        "uq_devices_user_id_device_name_active",
        "devices",
        ["user_id", "device_name"],
        unique=True,
        postgresql_where=sa.text("is_active"),
        sqlite_where=sa.text("is_active = 1"),
    )

    op.create_table(
        "signals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("producer_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("order_type", sa.String(16), nullable=False),
        sa.Column("entry_price", PRICE, nullable=True),
        sa.Column("stop_loss", PRICE, nullable=True),
        sa.Column("take_profit", PRICE, nullable=True),
        sa.Column("volume", PRICE, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["producer_id"], ["producers.id"], name=op.f("fk_signals_producer_id_producers")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_signals_created_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
        sa.UniqueConstraint(
            "producer_id", "external_id", name=op.f("uq_signals_producer_id_external_id")
        ),
        _enum_check("signals", "side", ("buy", "sell")),
        _enum_check("signals", "order_type", ("market", "limit", "stop")),
        _enum_check("signals", "status", ("open", "cancelled", "expired")),
    )
    op.create_index(
        "ix_signals_open_created_at",
        "signals",
        ["created_at", "id"],
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_signals_status_created_at", "signals", ["status", "created_at"])

    op.create_table(
        "signal_approvals",
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_signal_approvals_signal_id_signals")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_signal_approvals_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("signal_id", "user_id", name=op.f("pk_signal_approvals")),
        _enum_check("signal_approvals", "decision", ("approved", "rejected")),
    )
    op.create_index(op.f("ix_signal_approvals_user_id"), "signal_approvals", ["user_id"])

    op.create_table(
        "deliveries",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("first_delivered_at", TS, nullable=False),
        sa.Column("last_delivered_at", TS, nullable=False),
        sa.Column("delivery_count", sa.Integer(), nullable=False),
        sa.Column("settled_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_deliveries_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_deliveries_signal_id_signals")
        ),
        sa.PrimaryKeyConstraint("device_id", "signal_id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_signal_id", "deliveries", ["signal_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("signal_approvals")
    op.drop_table("signals")
    op.drop_table("devices")
    op.drop_table("producers")
    op.drop_table("used_nonces")
