"""execution reports, trades, reconciliation issues and the outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
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
# Exact decimals: NUMERIC on PostgreSQL, the decimal text on SQLite (see db.ExactDecimal).
PRICE = sa.Numeric(20, 8).with_variant(sa.String(22), "sqlite")
AMOUNT = sa.Numeric(38, 16).with_variant(sa.String(40), "sqlite")


def _check(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}"))


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("instrument", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("size", AMOUNT, nullable=False),
        sa.Column("cost", AMOUNT, nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("notional", AMOUNT, nullable=False),
        sa.Column("fill_count", sa.Integer(), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_trades_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_trades_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_trades_signal_id_signals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.UniqueConstraint("device_id", "signal_id", name=op.f("uq_trades_device_id_signal_id")),
    )
    op.create_index("ix_trades_user_id_opened_at", "trades", ["user_id", "opened_at"])

    op.create_table(
        "execution_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("execution_type", sa.String(8), nullable=False),
        sa.Column("fill_price", PRICE, nullable=True),
        sa.Column("fill_size", PRICE, nullable=True),
        sa.Column("broker_ticket", sa.String(64), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.String(1000), nullable=True),
        sa.Column("trade_id", sa.Uuid(), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_execution_reports_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_execution_reports_signal_id_signals")
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_execution_reports_trade_id_trades")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_reports")),
        sa.UniqueConstraint(
            "device_id", "report_id", name=op.f("uq_execution_reports_device_id_report_id")
        ),
        _check("execution_reports", "execution_type", ("ack", "fill", "error")),
    )
    op.create_index(
        "ix_execution_reports_signal_id_created_at",
        "execution_reports",
        ["signal_id", "created_at"],
    )
    op.create_index(
        "ix_execution_reports_device_id_created_at",
        "execution_reports",
        ["device_id", "created_at"],
    )

    op.create_table(
        "reconciliation_issues",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_reconciliation_issues_signal_id_signals")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_reconciliation_issues_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"], ["users.id"], name=op.f("fk_reconciliation_issues_resolved_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_issues")),
        sa.UniqueConstraint(
            "signal_id",
            "device_id",
            "kind",
            name=op.f("uq_reconciliation_issues_signal_id_device_id_kind"),
        ),
        _check(
            "reconciliation_issues",
            "kind",
            ("missing_ack", "missing_fill", "execution_error", "slippage", "size_mismatch"),
        ),
        _check("reconciliation_issues", "status", ("open", "resolved")),
    )
    op.create_index(
        "ix_reconciliation_issues_status_created_at",
        "reconciliation_issues",
        ["status", "created_at"],
    )
    op.create_index("ix_reconciliation_issues_device_id", "reconciliation_issues", ["device_id"])

    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("available_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("dead_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index(
        "ix_outbox_events_due",
        "outbox_events",
        ["available_at"],
        postgresql_where=sa.text("delivered_at IS NULL AND dead_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL AND dead_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("outbox_events")
    op.drop_table("reconciliation_issues")
    op.drop_table("execution_reports")
    op.drop_table("trades")
