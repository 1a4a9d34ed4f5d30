from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Insert,
    Select,
    Table,
    Uuid,
    any_,
    bindparam,
    column,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tradecast.affiliates.models import (
    Affiliate,
    AffiliateStatus,
    Commission,
    CommissionStatus,
    EarnedCommission,
    Payout,
    PayoutStatus,
    Referral,
    ReferralStatus,
)
from tradecast.affiliates.volume import FAR_FUTURE, RunningVolume
from tradecast.db import (
    DriverStatement,
    SessionStatements,
    Statements,
    UTCDateTime,
    insert_rows,
    json_row,
    json_rows,
    json_rows_value,
    json_table_rows,
    typed,
)
from tradecast.kit.money import ZERO
from tradecast.kit.pagination import PageParams

# Read on every fill of a referred user: built once, with bind parameters, run by
# ``Statements`` (see ``FillCommissionRepository``).
_USER_ID = bindparam("user_id", type_=Uuid())
_AFFILIATES = cast(Table, Affiliate.__table__)
_REFERRALS = cast(Table, Referral.__table__)
_COMMISSIONS = cast(Table, Commission.__table__)
_REFERRER_LOCKED = DriverStatement(
    select(
        _AFFILIATES.c.id,
        _AFFILIATES.c.status,
        _AFFILIATES.c.volume,
        _AFFILIATES.c.volume_after,
    )
    .join(_REFERRALS, _REFERRALS.c.affiliate_id == _AFFILIATES.c.id)
    .where(_REFERRALS.c.referred_user_id == _USER_ID)
    .with_for_update(of=_AFFILIATES)
)
_REFERRAL_STATUS = DriverStatement(
    select(_REFERRALS.c.id, _REFERRALS.c.status).where(_REFERRALS.c.referred_user_id == _USER_ID)
)
_insert_commission = insert(_COMMISSIONS).values(
    {column.key: bindparam(column.key, type_=column.type) for column in _COMMISSIONS.columns}
)
# The affiliate's running volume (an UPDATE's bind parameters may not share a name
# with a column of its table).
_move_volume = (
    update(_AFFILIATES)
    .where(_AFFILIATES.c.id == bindparam("b_affiliate_id", type_=Uuid()))
    .values(
        volume=bindparam("v_volume", type_=_AFFILIATES.c.volume.type),
        volume_after=bindparam("v_volume_after", type_=UTCDateTime()),
    )
)
_INSERT_COMMISSION = DriverStatement(_insert_commission)
_MOVE_VOLUME = DriverStatement(_move_volume)
# PostgreSQL: the commission and the affiliate's new volume in one statement.
_RECORD_COMMISSION = DriverStatement(_insert_commission.add_cte(_move_volume.cte("moved")))
# A batch of fills' commissions (``FillCommissionRepository``'s ``*_many``,
# PostgreSQL only), the batch in one bind parameter each.
_REFERRERS_LOCKED = DriverStatement(
    select(
        _REFERRALS.c.referred_user_id,
        _AFFILIATES.c.id,
        _AFFILIATES.c.status,
        _AFFILIATES.c.volume,
        _AFFILIATES.c.volume_after,
    )
    .join(_REFERRALS, _REFERRALS.c.affiliate_id == _AFFILIATES.c.id)
    .where(_REFERRALS.c.referred_user_id == any_(bindparam("user_ids", type_=ARRAY(Uuid()))))
    # Locked in the order of their ids: two batches cannot deadlock on affiliates.
    .order_by(_AFFILIATES.c.id)
    .with_for_update(of=_AFFILIATES)
)


def _referrals_and_volumes() -> Select[Any]:
    """``_REFERRAL_AND_VOLUME`` for each (user, affiliate, since, until) asked."""
    asks = json_rows(
        "asks",
        [
            typed(_REFERRALS.c.referred_user_id),
            column("affiliate_id", Uuid()),
            column("since", UTCDateTime()),
            column("until", UTCDateTime()),
        ],
        "asks",
    )
    earned = (
        select(func.sum(_COMMISSIONS.c.notional))
        .where(
            _COMMISSIONS.c.affiliate_id == asks.c.affiliate_id,
            _COMMISSIONS.c.status == CommissionStatus.EARNED.value,
            _COMMISSIONS.c.created_at > asks.c.since,
            _COMMISSIONS.c.created_at <= asks.c.until,
        )
        .scalar_subquery()
    )
    return select(
        asks.c.referred_user_id, _REFERRALS.c.id, _REFERRALS.c.status, earned.label("volume")
    ).join_from(asks, _REFERRALS, _REFERRALS.c.referred_user_id == asks.c.referred_user_id)


def _record_commissions() -> Insert:
    """Many commissions, and their affiliates' running volumes, in one statement."""
    given = json_table_rows(_COMMISSIONS, "given", "commissions")
    volumes = json_rows(
        "volumes",
        [typed(_AFFILIATES.c.id), typed(_AFFILIATES.c.volume), typed(_AFFILIATES.c.volume_after)],
        "volumes",
    )
    moved = (
        update(_AFFILIATES)
        .where(_AFFILIATES.c.id == volumes.c.id)
        .values(volume=volumes.c.volume, volume_after=volumes.c.volume_after)
        .cte("moved")
    )
    return insert_rows(_COMMISSIONS, given).add_cte(moved)


_REFERRALS_AND_VOLUMES = DriverStatement(_referrals_and_volumes())
_RECORD_COMMISSIONS = DriverStatement(_record_commissions())
# Earned commissions created in (since, until].
_EARNED_BETWEEN = (
    _COMMISSIONS.c.affiliate_id == bindparam("affiliate_id", type_=Uuid()),
    _COMMISSIONS.c.status == CommissionStatus.EARNED.value,
    _COMMISSIONS.c.created_at > bindparam("since", type_=UTCDateTime()),
    _COMMISSIONS.c.created_at <= bindparam("until", type_=UTCDateTime()),
)
# Exact on both databases: PostgreSQL sums NUMERIC; SQLite's sum would go through
# binary floats, so there the rows are added as ``Decimal`` (see ``_exact_sums``).
_VOLUME_SUM = DriverStatement(
    select(func.sum(_COMMISSIONS.c.notional).label("volume")).where(*_EARNED_BETWEEN)
)
_VOLUME_ROWS = DriverStatement(
    select(_COMMISSIONS.c.notional.label("volume")).where(*_EARNED_BETWEEN)
)
# PostgreSQL: the referral and the volume in one read.
_REFERRAL_AND_VOLUME = DriverStatement(
    select(
        _REFERRALS.c.id,
        _REFERRALS.c.status,
        select(func.sum(_COMMISSIONS.c.notional))
        .where(*_EARNED_BETWEEN)
        .scalar_subquery()
        .label("volume"),
    ).where(_REFERRALS.c.referred_user_id == _USER_ID)
)
_REFERRAL_OF = (
    select(Referral)
    .where(Referral.referred_user_id == _USER_ID)
    .execution_options(populate_existing=True)
)


async def _exact_sums(
    session: AsyncSession,
    key: InstrumentedAttribute[Any],
    value: InstrumentedAttribute[Decimal],
    *conditions: ColumnElement[bool],
) -> dict[Any, Decimal]:
    """Σ ``value`` grouped by ``key``, exact on both databases.

    PostgreSQL sums NUMERIC exactly. SQLite would turn the stored decimal text
    into binary floats before adding, so there the values are added here as
    ``Decimal`` instead.
    """
    if session.get_bind().dialect.name == "sqlite":
        totals: dict[Any, Decimal] = {}
        for group, amount in await session.execute(select(key, value).where(*conditions)):
            totals[group] = totals.get(group, ZERO) + amount
        return totals
    rows = await session.execute(select(key, func.sum(value)).where(*conditions).group_by(key))
    return {group: Decimal(total) for group, total in rows}


async def _exact_sum(
    session: AsyncSession,
    value: InstrumentedAttribute[Decimal],
    *conditions: ColumnElement[bool],
) -> Decimal:
    """Σ ``value``, exact on both databases (see ``_exact_sums``)."""
    if session.get_bind().dialect.name == "sqlite":
        return sum(await session.scalars(select(value).where(*conditions)), ZERO)
    total = await session.scalar(select(func.sum(value)).where(*conditions))
    return ZERO if total is None else Decimal(total)


async def _page(
    session: AsyncSession, query: Select[Any], page: PageParams, *order: Any
) -> tuple[Sequence[Any], int]:
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(*order).limit(page.limit).offset(page.offset))
    return rows.all(), int(total or 0)


class AffiliateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, affiliate: Affiliate) -> None:
        self.session.add(affiliate)

    async def get(self, affiliate_id: uuid.UUID) -> Affiliate:
        affiliate = await self.session.get(Affiliate, affiliate_id)
        if affiliate is None:  # affiliates are never deleted
            raise RuntimeError(f"affiliate {affiliate_id} missing")
        return affiliate

    async def by_user(self, user_id: uuid.UUID) -> Affiliate | None:
        return await self.session.scalar(select(Affiliate).where(Affiliate.user_id == user_id))

    async def by_token(self, token: str) -> Affiliate | None:
        return await self.session.scalar(select(Affiliate).where(Affiliate.referral_token == token))

    async def lock(self, affiliate_id: uuid.UUID) -> Affiliate:
        """The affiliate's row, locked until commit (SQLite: BEGIN IMMEDIATE holds it already).

        Everyone who reads the affiliate's money to decide something (a commission's
        tier, a payout against the balance, releasing withheld commissions) takes this
        lock first, so each of them sees what the previous one committed.
        """
        affiliate = await self.session.scalar(
            select(Affiliate)
            .where(Affiliate.id == affiliate_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if affiliate is None:  # affiliates are never deleted
            raise RuntimeError(f"affiliate {affiliate_id} missing")
        return affiliate

    async def user_ids(self, affiliate_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        """affiliate id → the affiliate's user id."""
        if not affiliate_ids:
            return {}
        rows = await self.session.execute(
            select(Affiliate.id, Affiliate.user_id).where(Affiliate.id.in_(affiliate_ids))
        )
        return {affiliate_id: user_id for affiliate_id, user_id in rows}

    async def referral_count(self, affiliate_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(Referral).where(Referral.affiliate_id == affiliate_id)
        )
        return int(count or 0)


class ReferralRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, referral: Referral) -> None:
        self.session.add(referral)

    async def of_user(self, user_id: uuid.UUID) -> Referral | None:
        """The referral that brought ``user_id``, read afresh (its status may have changed)."""
        found: Referral | None = await self.session.scalar(_REFERRAL_OF, {"user_id": user_id})
        return found

    async def get(self, referral_id: uuid.UUID) -> Referral | None:
        return await self.session.scalar(
            select(Referral)
            .where(Referral.id == referral_id)
            .execution_options(populate_existing=True)
        )

    async def page(
        self, status: ReferralStatus | None, page: PageParams
    ) -> tuple[Sequence[Referral], int]:
        query = select(Referral)
        if status is not None:
            query = query.where(Referral.status == status)
        return await _page(
            self.session, query, page, Referral.created_at.desc(), Referral.id.desc()
        )

    async def withheld_totals(self, referral_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
        if not referral_ids:
            return {}
        return await _exact_sums(
            self.session,
            Commission.referral_id,
            Commission.amount,
            Commission.referral_id.in_(referral_ids),
            Commission.status == CommissionStatus.WITHHELD,
        )


class CommissionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def referred_volume(self, affiliate_id: uuid.UUID, since: datetime) -> Decimal:
        return await _referred_volume(SessionStatements(self.session), affiliate_id, since)

    async def earned_total(self, affiliate_id: uuid.UUID) -> Decimal:
        return await _exact_sum(
            self.session,
            Commission.amount,
            Commission.affiliate_id == affiliate_id,
            Commission.status == CommissionStatus.EARNED,
        )

    async def page_earned(
        self, affiliate_id: uuid.UUID, page: PageParams
    ) -> tuple[Sequence[Commission], int]:
        query = select(Commission).where(
            Commission.affiliate_id == affiliate_id,
            Commission.status == CommissionStatus.EARNED,
        )
        return await _page(
            self.session, query, page, Commission.created_at.desc(), Commission.id.desc()
        )

    async def release_withheld(self, referral_id: uuid.UUID) -> tuple[int, Decimal]:
        """Turn a referral's withheld commissions into earned ones: (how many, Σ amount)."""
        where = (
            Commission.referral_id == referral_id,
            Commission.status == CommissionStatus.WITHHELD,
        )
        amount = await _exact_sum(self.session, Commission.amount, *where)
        released = await self.session.execute(
            update(Commission).where(*where).values(status=CommissionStatus.EARNED)
        )
        return int(getattr(released, "rowcount", 0) or 0), amount


class PayoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, payout: Payout) -> None:
        self.session.add(payout)

    async def get(self, payout_id: uuid.UUID) -> Payout | None:
        return await self.session.scalar(
            select(Payout).where(Payout.id == payout_id).execution_options(populate_existing=True)
        )

    async def by_idempotency_key(self, affiliate_id: uuid.UUID, key: str) -> Payout | None:
        return await self.session.scalar(
            select(Payout).where(Payout.affiliate_id == affiliate_id, Payout.idempotency_key == key)
        )

    async def has_pending(self, affiliate_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(Payout.id).where(
                Payout.affiliate_id == affiliate_id, Payout.status == PayoutStatus.PENDING
            )
        )
        return found is not None

    async def totals_by_status(self, affiliate_id: uuid.UUID) -> dict[PayoutStatus, Decimal]:
        sums = await _exact_sums(
            self.session, Payout.status, Payout.amount, Payout.affiliate_id == affiliate_id
        )
        return {PayoutStatus(status): total for status, total in sums.items()}

    async def page_for_affiliate(
        self, affiliate_id: uuid.UUID, page: PageParams
    ) -> tuple[Sequence[Payout], int]:
        query = select(Payout).where(Payout.affiliate_id == affiliate_id)
        return await _page(self.session, query, page, Payout.created_at.desc(), Payout.id.desc())

    async def page_all(
        self, status: PayoutStatus | None, page: PageParams
    ) -> tuple[Sequence[Payout], int]:
        query = select(Payout)
        if status is not None:
            query = query.where(Payout.status == status)
        return await _page(self.session, query, page, Payout.created_at.desc(), Payout.id.desc())

    async def settle(self, payout_id: uuid.UUID, **values: Any) -> Payout | None:
        """Move a pending payout to a final state; ``None`` if it is not pending (any more).

        A conditional UPDATE: of two admins settling one payout at once, one wins
        and the other finds it no longer pending.
        """
        settled = await self.session.execute(
            update(Payout)
            .where(Payout.id == payout_id, Payout.status == PayoutStatus.PENDING)
            .values(**values)
            .returning(Payout.id)
        )
        if settled.first() is None:
            return None
        return await self.get(payout_id)


@dataclass(frozen=True)
class Referrer:
    affiliate_id: uuid.UUID
    status: AffiliateStatus
    running: RunningVolume


@dataclass(frozen=True)
class ReferralState:
    referral_id: uuid.UUID
    status: ReferralStatus


async def _referred_volume(
    statements: Statements, affiliate_id: uuid.UUID, since: datetime, until: datetime = FAR_FUTURE
) -> Decimal:
    """Σ notional of the fills that earned the affiliate a commission in (since, until]."""
    values = {"affiliate_id": affiliate_id, "since": since, "until": until}
    if statements.is_sqlite:
        earned = await statements.rows(_VOLUME_ROWS, values)
        return sum((row["volume"] for row in earned), ZERO)
    (row,) = await statements.rows(_VOLUME_SUM, values)
    return ZERO if row["volume"] is None else Decimal(row["volume"])


class FillCommissionRepository:
    """The statements of a fill's commission, in the fill's unit of work."""

    def __init__(self, statements: Statements) -> None:
        self.statements = statements

    async def lock_referrer_of(self, user_id: uuid.UUID) -> Referrer | None:
        """The affiliate who referred ``user_id``, its row locked as
        ``AffiliateRepository.lock`` locks it, with its running volume."""
        rows = await self.statements.rows(_REFERRER_LOCKED, {"user_id": user_id})
        if not rows:
            return None
        row = rows[0]
        running = RunningVolume(Decimal(row["volume"]), row["volume_after"])
        return Referrer(row["id"], AffiliateStatus(row["status"]), running)

    async def referral_and_volume(
        self, user_id: uuid.UUID, affiliate_id: uuid.UUID, since: datetime, until: datetime
    ) -> tuple[ReferralState, Decimal] | None:
        """The referral that brought ``user_id``, read afresh, and Σ notional of the
        fills that earned the affiliate a commission in (``since``, ``until``]; None
        if the user was not referred."""
        values = {"user_id": user_id, "affiliate_id": affiliate_id, "since": since, "until": until}
        if self.statements.is_sqlite:
            rows = await self.statements.rows(_REFERRAL_STATUS, values)
            volume = await _referred_volume(self.statements, affiliate_id, since, until)
        else:
            rows = await self.statements.rows(_REFERRAL_AND_VOLUME, values)
            volume = ZERO if not rows or rows[0]["volume"] is None else Decimal(rows[0]["volume"])
        if not rows:
            return None
        return ReferralState(rows[0]["id"], ReferralStatus(rows[0]["status"])), volume

    async def lock_referrers_of_many(
        self, user_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, Referrer]:
        """``lock_referrer_of`` for many users (PostgreSQL), by user; the
        affiliates are locked in the order of their ids."""
        rows = await self.statements.rows(_REFERRERS_LOCKED, {"user_ids": list(user_ids)})
        return {
            row["referred_user_id"]: Referrer(
                row["id"],
                AffiliateStatus(row["status"]),
                RunningVolume(Decimal(row["volume"]), row["volume_after"]),
            )
            for row in rows
        }

    async def referrals_and_volumes(
        self, asks: Sequence[tuple[uuid.UUID, uuid.UUID, datetime, datetime]]
    ) -> dict[uuid.UUID, tuple[ReferralState, Decimal]]:
        """``referral_and_volume`` for each (user, affiliate, since, until) (PostgreSQL),
        by user; a user who was not referred has no entry."""
        rows = [
            {"referred_user_id": user, "affiliate_id": affiliate, "since": since, "until": until}
            for user, affiliate, since, until in asks
        ]
        found = await self.statements.rows(_REFERRALS_AND_VOLUMES, {"asks": json_rows_value(rows)})
        return {
            row["referred_user_id"]: (
                ReferralState(row["id"], ReferralStatus(row["status"])),
                ZERO if row["volume"] is None else Decimal(row["volume"]),
            )
            for row in found
        }

    async def insert_many(
        self, commissions: Sequence[EarnedCommission], running: Mapping[uuid.UUID, RunningVolume]
    ) -> None:
        """Store ``commissions`` and each affiliate's running volume (PostgreSQL)."""
        values = {
            "commissions": json_rows_value(
                [json_row(_COMMISSIONS, commission) for commission in commissions]
            ),
            "volumes": json_rows_value(
                [
                    {"id": affiliate_id, "volume": volume.volume, "volume_after": volume.after}
                    for affiliate_id, volume in running.items()
                ]
            ),
        }
        await self.statements.execute(_RECORD_COMMISSIONS, values)

    async def insert(self, commission: EarnedCommission, running: RunningVolume) -> None:
        """Store ``commission`` and the affiliate's running volume with it."""
        values: dict[str, Any] = {
            column.key: getattr(commission, column.key) for column in _COMMISSIONS.columns
        }
        values.update(
            b_affiliate_id=commission.affiliate_id,
            v_volume=running.volume,
            v_volume_after=running.after,
        )
        if not self.statements.is_sqlite:
            await self.statements.execute(_RECORD_COMMISSION, values)
            return
        await self.statements.execute(_INSERT_COMMISSION, values)
        await self.statements.execute(_MOVE_VOLUME, values)
