from __future__ import annotations

from tradecast.errors import Conflict, NotFound, UnprocessableEntity


class AffiliateNotFound(NotFound):
    code = "affiliate_not_found"
    title = "No affiliate account"


class AlreadyAffiliate(Conflict):
    code = "affiliate_exists"
    title = "Already an affiliate"


class PayoutBelowMinimum(UnprocessableEntity):
    code = "payout_below_minimum"
    title = "Payout below the minimum"


class PayoutExceedsBalance(Conflict):
    code = "payout_exceeds_balance"
    title = "Payout exceeds the available balance"


class PayoutPending(Conflict):
    code = "payout_pending"
    title = "Another payout is pending"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency-Key already used for a different request"


class PayoutNotFound(NotFound):
    code = "payout_not_found"
    title = "No such payout"


class PayoutNotPending(Conflict):
    code = "payout_not_pending"
    title = "Payout is no longer pending"


class ReferralNotFound(NotFound):
    code = "referral_not_found"
    title = "No such referral"


class ReferralNotFlagged(Conflict):
    code = "referral_not_flagged"
    title = "Referral is not flagged"
