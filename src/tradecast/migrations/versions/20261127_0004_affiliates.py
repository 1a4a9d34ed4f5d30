"""affiliates, referrals, commissions and payouts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
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
# Exact decimals: NUMERIC on PostgreSQL, the decimal text on SQLite (see db.ExactDecimal).
PRICE = sa.Numeric(20, 8).with_variant(sa.String(22), "sqlite")
AMOUNT = sa.Numeric(38, 16).with_variant(sa.String(40), "sqlite")
MONEY = sa.Numeric(18, 2).with_variant(sa.String(20), "sqlite")


def _check(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}"))


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    _create_affiliates()
    _create_referrals()
    _create_commissions()
    _create_payouts()


def _create_affiliates() -> None:
    op.create_table(
        "affiliates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("referral_token", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _fk("affiliates", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliates")),
        sa.UniqueConstraint("user_id", name=op.f("uq_affiliates_user_id")),
        sa.UniqueConstraint("referral_token", name=op.f("uq_affiliates_referral_token")),
        _check("affiliates", "status", ("active", "suspended")),
    )


def _create_referrals() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=False),
        sa.Column("referred_user_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("flag_reasons", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("cleared_at", TS, nullable=True),
        sa.Column("cleared_by", sa.Uuid(), nullable=True),
        _fk("referrals", "affiliate_id", "affiliates"),
        _fk("referrals", "referred_user_id", "users"),
        _fk("referrals", "cleared_by", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("referred_user_id", name=op.f("uq_referrals_referred_user_id")),
        _check("referrals", "source", ("signup", "telegram")),
        _check("referrals", "status", ("active", "flagged", "cleared")),
    )
    op.create_index(
        "ix_referrals_affiliate_id_created_at", "referrals", ["affiliate_id", "created_at"]
    )
    op.create_index("ix_referrals_status_created_at", "referrals", ["status", "created_at"])


def _create_commissions() -> None:
    op.create_table(
        "commissions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("referred_user_id", sa.Uuid(), nullable=False),
        sa.Column("trade_id", sa.Uuid(), nullable=False),
        sa.Column("execution_report_id", sa.Uuid(), nullable=False),
        sa.Column("notional", AMOUNT, nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("rate", PRICE, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _fk("commissions", "affiliate_id", "affiliates"),
        _fk("commissions", "referral_id", "referrals"),
        _fk("commissions", "referred_user_id", "users"),
        _fk("commissions", "trade_id", "trades"),
        _fk("commissions", "execution_report_id", "execution_reports"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commissions")),
        sa.UniqueConstraint("execution_report_id", name=op.f("uq_commissions_execution_report_id")),
        _check("commissions", "status", ("earned", "withheld")),
    )
    op.create_index(
        "ix_commissions_affiliate_id_created_at", "commissions", ["affiliate_id", "created_at"]
    )
    op.create_index("ix_commissions_referral_id", "commissions", ["referral_id"])


def _create_payouts() -> None:
    op.create_table(
        "payouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bank_account", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(128), nullable=True),
        sa.Column("failure_reason", sa.String(500), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("processed_by", sa.Uuid(), nullable=True),
        _fk("payouts", "affiliate_id", "affiliates"),
        _fk("payouts", "processed_by", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint(
            "affiliate_id",
            "idempotency_key",
            name=op.f("uq_payouts_affiliate_id_idempotency_key"),
        ),
        _check("payouts", "status", ("pending", "paid", "failed")),
    )
    # One pending payout per affiliate, held by the database itself.
    op.create_index(
        "uq_payouts_affiliate_id_pending",
        "payouts",
        ["affiliate_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_payouts_affiliate_id_created_at", "payouts", ["affiliate_id", "created_at"])
    op.create_index("ix_payouts_status_created_at", "payouts", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("payouts")
    op.drop_table("commissions")
    op.drop_table("referrals")
    op.drop_table("affiliates")
