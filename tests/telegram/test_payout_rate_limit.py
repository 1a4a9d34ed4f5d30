"""/payout counts in the same SPEC §9 budget as the API: one request per 10 s per affiliate."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from tests.affiliates.conftest import Program
from tests.desk import Desk
from tests.helpers import Api
from tests.telegram.conftest import Chat
from tradecast.config import Settings


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, object]) -> dict[str, object]:
    return {**settings_overrides, "rate_limits_enabled": True}


async def test_a_payout_through_the_api_then_the_bot_is_rate_limited(
    app: FastAPI, api: Api, desk: Desk, settings: Settings, chat: Chat
) -> None:
    program = Program(app, api, desk, settings)
    affiliate, _, _ = await program.funded("20000")
    await chat.link(api, affiliate)
    first = await program.payout(affiliate, "50")
    assert first.status_code == 201, first.text
    assert (await program.settle(first.json()["id"], "complete", reference="R1")).status_code == 200
    reply = await chat.send("/payout 60")
    assert reply.startswith("More than 1 payout requests in 10 s; retry in ")
    assert (await program.stats(affiliate))["pending_total"] == "0"
