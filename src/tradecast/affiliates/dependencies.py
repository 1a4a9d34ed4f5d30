"""``CurrentAffiliate``: the signed-in user's affiliate account, for affiliate endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tradecast.affiliates.models import Affiliate
from tradecast.affiliates.service import accounts
from tradecast.db import DbSession
from tradecast.users.dependencies import CurrentUser


async def current_affiliate(user: CurrentUser, session: DbSession) -> Affiliate:
    return await accounts.affiliate_of(session, user)


CurrentAffiliate = Annotated[Affiliate, Depends(current_affiliate)]
