"""The affiliate program's business rules, one module per topic: ``accounts``,
``referrals``, ``commissions``, ``payouts``. Each flushes, none commits."""

from __future__ import annotations

from tradecast.affiliates.service.referrals import attach_referral_from_telegram

__all__ = ["attach_referral_from_telegram"]
