from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status

from tradecast.affiliates.dependencies import CurrentAffiliate
from tradecast.affiliates.errors import (
    AffiliateNotFound,
    AlreadyAffiliate,
    IdempotencyKeyReused,
    PayoutBelowMinimum,
    PayoutExceedsBalance,
    PayoutNotFound,
    PayoutNotPending,
    PayoutPending,
    ReferralNotFlagged,
    ReferralNotFound,
)
from tradecast.affiliates.models import PayoutStatus, ReferralStatus
from tradecast.affiliates.schemas import (
    AdminPayoutOut,
    AffiliateOut,
    CommissionOut,
    CompleteIn,
    FailIn,
    LinkOut,
    PayoutIn,
    PayoutOut,
    ReferralOut,
    StatsOut,
)
from tradecast.affiliates.service import accounts, commissions, payouts, referrals
from tradecast.affiliates.service.payouts import PayoutRequest, PayoutView
from tradecast.affiliates.service.referrals import ReferralView
from tradecast.config import AppSettings
from tradecast.db import DbSession
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.kit.decimals import ExactJSONRoute
from tradecast.kit.pagination import Page, Pagination
from tradecast.ratelimit import PAYOUT, RateLimited, rate_limited
from tradecast.users.dependencies import AdminUser, CurrentUser
from tradecast.users.errors import AdminRequired

affiliate_router = APIRouter(
    prefix="/api/v1/affiliates", tags=["affiliates"], route_class=ExactJSONRoute
)
admin_router = APIRouter(prefix="/api/v1/admin", tags=["admin"], route_class=ExactJSONRoute)

_AFFILIATE_ERRORS = (Unauthorized, AffiliateNotFound)
_ADMIN_ERRORS = (Unauthorized, AdminRequired, UnprocessableEntity)
_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"model": PayoutOut, "description": "A retry with the same Idempotency-Key and body."}
}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Printable ASCII, 1–128 characters, unique per request you mean.",
    ),
]


@affiliate_router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=AffiliateOut,
    responses=responses_for(Unauthorized, AlreadyAffiliate),
)
async def register(user: CurrentUser, session: DbSession, settings: AppSettings) -> AffiliateOut:
    """Become an affiliate: get a referral token whose sign-ups earn you commissions."""
    affiliate = await accounts.register(session, user)
    return AffiliateOut(
        id=affiliate.id,
        referral_token=affiliate.referral_token,
        commission_tier=accounts.starting_tier(settings).number,
        status=affiliate.status,
        created_at=affiliate.created_at,
    )


@affiliate_router.get("/link", response_model=LinkOut, responses=responses_for(*_AFFILIATE_ERRORS))
async def link(affiliate: CurrentAffiliate, settings: AppSettings) -> LinkOut:
    """The referral links to share: a sign-up page link and a Telegram deep link."""
    found = accounts.link(settings, affiliate)
    return LinkOut(
        referral_token=found.referral_token, url=found.url, telegram_url=found.telegram_url
    )


@affiliate_router.get(
    "/stats", response_model=StatsOut, responses=responses_for(*_AFFILIATE_ERRORS)
)
async def stats(affiliate: CurrentAffiliate, session: DbSession, settings: AppSettings) -> StatsOut:
    """Referrals, the current tier and 30-day volume, and the balance:
    ``available_balance = earned_total − paid_total − pending_total``."""
    found = await accounts.stats(session, settings, affiliate)
    return StatsOut(
        referral_count=found.referral_count,
        commission_tier=found.tier.number,
        commission_rate=found.tier.rate,
        volume_30d=found.volume_30d,
        earned_total=found.balance.earned,
        available_balance=found.balance.available,
        pending_total=found.balance.pending,
        paid_total=found.balance.paid,
        currency=settings.currency,
    )


@affiliate_router.get(
    "/history",
    response_model=Page[CommissionOut],
    responses=responses_for(*_AFFILIATE_ERRORS, UnprocessableEntity),
)
async def history(
    affiliate: CurrentAffiliate, session: DbSession, page: Pagination
) -> Page[CommissionOut]:
    """Commissions earned on referred users' fills, newest first."""
    items, total = await commissions.history(session, affiliate, page)
    return Page(
        items=[CommissionOut.model_validate(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


async def _payout_rate_key(affiliate: CurrentAffiliate) -> str:
    return str(affiliate.id)


@affiliate_router.post(
    "/payout",
    status_code=status.HTTP_201_CREATED,
    response_model=PayoutOut,
    responses={
        **responses_for(
            *_AFFILIATE_ERRORS,
            PayoutBelowMinimum,
            PayoutExceedsBalance,
            PayoutPending,
            IdempotencyKeyReused,
            UnprocessableEntity,
            RateLimited,
        ),
        **_REPLAYED,
    },
    # SPEC §9: one payout request per 10 s per affiliate, counted once authenticated.
    dependencies=[Depends(rate_limited(PAYOUT, key=_payout_rate_key))],
)
async def request_payout(
    body: PayoutIn,
    affiliate: CurrentAffiliate,
    session: DbSession,
    settings: AppSettings,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PayoutOut:
    """Ask for a payout of ``amount`` (at least ``AFFILIATE_MIN_PAYOUT``, at most the
    available balance) to ``bank_account``. One payout may be pending at a time.

    With an ``Idempotency-Key``, retrying the same request answers 200 with the
    payout the first one created; the same key with a different body answers 409."""
    wanted = PayoutRequest(body.amount, body.bank_account, idempotency_key)
    requested = await payouts.request(session, settings, affiliate, wanted)
    if not requested.created:
        response.status_code = status.HTTP_200_OK
    return PayoutOut.model_validate(requested.payout)


@affiliate_router.get(
    "/payouts",
    response_model=Page[PayoutOut],
    responses=responses_for(*_AFFILIATE_ERRORS, UnprocessableEntity),
)
async def list_payouts(
    affiliate: CurrentAffiliate, session: DbSession, page: Pagination
) -> Page[PayoutOut]:
    """The affiliate's payouts, newest first."""
    items, total = await payouts.payouts_of(session, affiliate, page)
    return Page(
        items=[PayoutOut.model_validate(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@affiliate_router.get(
    "/payouts/{payout_id}",
    response_model=PayoutOut,
    responses=responses_for(*_AFFILIATE_ERRORS, PayoutNotFound, UnprocessableEntity),
)
async def get_payout(
    payout_id: uuid.UUID, affiliate: CurrentAffiliate, session: DbSession
) -> PayoutOut:
    """One of the affiliate's payouts, to follow its status."""
    return PayoutOut.model_validate(await payouts.payout_of(session, affiliate, payout_id))


def _admin_payout(view: PayoutView) -> AdminPayoutOut:
    base = PayoutOut.model_validate(view.payout)
    return AdminPayoutOut(
        **base.model_dump(),
        affiliate_id=view.payout.affiliate_id,
        user_id=view.user_id,
        processed_by=view.payout.processed_by,
    )


@admin_router.get(
    "/payouts", response_model=Page[AdminPayoutOut], responses=responses_for(*_ADMIN_ERRORS)
)
async def admin_list_payouts(
    _: AdminUser,
    session: DbSession,
    page: Pagination,
    status: Annotated[PayoutStatus | None, Query()] = None,
) -> Page[AdminPayoutOut]:
    """Payouts of all affiliates, newest first; ``status=pending`` is the queue to pay."""
    items, total = await payouts.payouts_for_admin(session, status, page)
    return Page(
        items=[_admin_payout(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@admin_router.post(
    "/payouts/{payout_id}/complete",
    response_model=AdminPayoutOut,
    responses=responses_for(*_ADMIN_ERRORS, PayoutNotFound, PayoutNotPending),
)
async def complete_payout(
    payout_id: uuid.UUID, body: CompleteIn, admin: AdminUser, session: DbSession
) -> AdminPayoutOut:
    """The transfer was made: a pending payout becomes ``paid`` with its ``reference``."""
    return _admin_payout(await payouts.complete(session, admin, payout_id, body.reference))


@admin_router.post(
    "/payouts/{payout_id}/fail",
    response_model=AdminPayoutOut,
    responses=responses_for(*_ADMIN_ERRORS, PayoutNotFound, PayoutNotPending),
)
async def fail_payout(
    payout_id: uuid.UUID, body: FailIn, admin: AdminUser, session: DbSession
) -> AdminPayoutOut:
    """The transfer failed: a pending payout becomes ``failed`` with the ``reason``, and its
    amount is available to the affiliate again."""
    return _admin_payout(await payouts.fail(session, admin, payout_id, body.reason))


def _referral(view: ReferralView) -> ReferralOut:
    referral = view.referral
    return ReferralOut(
        id=referral.id,
        affiliate_id=referral.affiliate_id,
        affiliate_user_id=view.affiliate_user_id,
        referred_user_id=referral.referred_user_id,
        source=referral.source,
        status=referral.status,
        flag_reasons=list(referral.flag_reasons),
        withheld_amount=view.withheld_amount,
        created_at=referral.created_at,
        cleared_at=referral.cleared_at,
        cleared_by=referral.cleared_by,
    )


@admin_router.get(
    "/referrals", response_model=Page[ReferralOut], responses=responses_for(*_ADMIN_ERRORS)
)
async def admin_list_referrals(
    _: AdminUser,
    session: DbSession,
    page: Pagination,
    status: Annotated[ReferralStatus | None, Query()] = None,
) -> Page[ReferralOut]:
    """Referrals, newest first; ``status=flagged`` lists those that look like
    self-referrals and earn nothing until cleared."""
    items, total = await referrals.referrals_for_review(session, status, page)
    return Page(
        items=[_referral(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@admin_router.post(
    "/referrals/{referral_id}/clear",
    response_model=ReferralOut,
    responses=responses_for(*_ADMIN_ERRORS, ReferralNotFound, ReferralNotFlagged),
)
async def clear_referral(
    referral_id: uuid.UUID, admin: AdminUser, session: DbSession
) -> ReferralOut:
    """Clear a flagged referral after review: its fills earn from now on, and the
    commissions withheld while it was flagged are released to the affiliate."""
    return _referral(await referrals.clear(session, admin, referral_id))


router = APIRouter()
router.include_router(affiliate_router)
router.include_router(admin_router)
