from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.affiliates.conftest import Program
from tests.helpers import assert_problem


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"public_base_url": "https://tradecast.example/", "telegram_bot_username": "tc_bot"}


async def test_register_once(program: Program) -> None:
    user = await program.api.user()
    first = await program.http.post("/api/v1/affiliates/register", headers=user.headers)
    assert first.status_code == 201, first.text
    body = first.json()
    assert set(body) == {"id", "referral_token", "commission_tier", "status", "created_at"}
    assert (body["commission_tier"], body["status"]) == (1, "active")
    assert len(body["referral_token"]) >= 16
    again = await program.http.post("/api/v1/affiliates/register", headers=user.headers)
    assert_problem(again, 409, "affiliate_exists")


async def test_link_carries_the_token_on_the_web_and_in_telegram(program: Program) -> None:
    user, token = await program.affiliate()
    response = await program.http.get("/api/v1/affiliates/link", headers=user.headers)
    assert response.json() == {
        "referral_token": token,
        "url": f"https://tradecast.example/?ref={token}",
        "telegram_url": f"https://t.me/tc_bot?start=ref_{token}",
    }


async def test_a_fresh_affiliate_has_nothing_yet(program: Program) -> None:
    user, _ = await program.affiliate()
    assert await program.stats(user) == {
        "referral_count": 0,
        "commission_tier": 1,
        "commission_rate": "0.005",
        "volume_30d": "0",
        "earned_total": "0",
        "available_balance": "0",
        "pending_total": "0",
        "paid_total": "0",
        "currency": "USD",
    }
    payouts = await program.http.get("/api/v1/affiliates/payouts", headers=user.headers)
    assert payouts.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/affiliates/link"),
        ("GET", "/api/v1/affiliates/stats"),
        ("GET", "/api/v1/affiliates/history"),
        ("GET", "/api/v1/affiliates/payouts"),
        ("POST", "/api/v1/affiliates/payout"),
    ],
)
async def test_a_user_who_is_no_affiliate_gets_404(
    program: Program, method: str, path: str
) -> None:
    user = await program.api.user()
    body = {"amount": "60", "bank_account": "DE89370400440532013000"}
    response = await program.http.request(
        method, path, json=body if method == "POST" else None, headers=user.headers
    )
    assert_problem(response, 404, "affiliate_not_found")


async def test_affiliate_endpoints_need_a_login(program: Program) -> None:
    assert_problem(await program.http.get("/api/v1/affiliates/stats"), 401)
    assert_problem(await program.http.post("/api/v1/affiliates/register"), 401)


async def test_history_is_paginated_newest_first(program: Program) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    for price in ("1000", "2000", "3000"):
        await program.fill(trader, price)
    page = await program.http.get(
        "/api/v1/affiliates/history", params={"limit": 2, "offset": 1}, headers=affiliate.headers
    )
    body = page.json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 1)
    assert [c["notional"] for c in body["items"]] == ["2000", "1000"]
    assert set(body["items"][0]) == {
        "id",
        "trade_id",
        "referred_user_id",
        "notional",
        "tier",
        "rate",
        "amount",
        "created_at",
    }
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
        response = await program.http.get(
            "/api/v1/affiliates/history", params=params, headers=affiliate.headers
        )
        assert_problem(response, 422)


async def test_admins_list_payouts_by_status(program: Program) -> None:
    first, _, _ = await program.funded("20000")
    second, _, _ = await program.funded("20000")
    paid = (await program.payout(first, "60")).json()
    await program.settle(paid["id"], "complete", reference="R")
    pending = (await program.payout(second, "70", bank_account="NL91ABNA0417164300")).json()
    admin = await program.desk.admin()

    async def listed(**params: str) -> list[dict[str, Any]]:
        response = await program.http.get(
            "/api/v1/admin/payouts", params=params, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    queue = await listed(status="pending")
    assert [(p["id"], p["user_id"], p["bank_account"]) for p in queue] == [
        (pending["id"], second.id, "NL91ABNA0417164300")
    ]
    assert [p["id"] for p in await listed(status="paid")] == [paid["id"]]
    assert [p["id"] for p in await listed()] == [pending["id"], paid["id"]]
    assert await listed(status="failed") == []
    assert_problem(
        await program.http.get(
            "/api/v1/admin/payouts", params={"status": "lost"}, headers=admin.headers
        ),
        422,
    )
    assert_problem(await program.http.get("/api/v1/admin/payouts", headers=first.headers), 403)


async def test_one_affiliate_never_sees_anothers_referrals_commissions_or_payouts(
    program: Program,
) -> None:
    alice, alice_token = await program.affiliate()
    bob, bob_token = await program.affiliate()
    alice_trader = await program.referred(alice_token)
    bob_traders = [await program.referred(bob_token) for _ in range(2)]
    await program.fill(alice_trader, "12000")
    for trader in bob_traders:
        await program.fill(trader, "6000")
    alice_payout = (await program.payout(alice, "60")).json()
    bob_payout = (await program.payout(bob, "50")).json()

    for me, trader_ids, payout, theirs, counts in (
        (alice, {alice_trader.id}, alice_payout, bob_payout, (1, "120")),
        (bob, {t.id for t in bob_traders}, bob_payout, alice_payout, (2, "90")),
    ):
        stats = await program.stats(me)
        assert (stats["referral_count"], stats["earned_total"]) == counts
        assert {c["referred_user_id"] for c in await program.history(me)} == trader_ids
        listed = await program.http.get("/api/v1/affiliates/payouts", headers=me.headers)
        assert [p["id"] for p in listed.json()["items"]] == [payout["id"]]
        own = await program.http.get(
            f"/api/v1/affiliates/payouts/{payout['id']}", headers=me.headers
        )
        assert own.status_code == 200
        other = await program.http.get(
            f"/api/v1/affiliates/payouts/{theirs['id']}", headers=me.headers
        )
        assert_problem(other, 404, "payout_not_found")
    missing = await program.http.get(
        f"/api/v1/affiliates/payouts/{uuid.uuid4()}", headers=alice.headers
    )
    assert_problem(missing, 404, "payout_not_found")


async def test_every_answer_is_declared_in_openapi(program: Program) -> None:
    schema = (await program.http.get("/openapi.json")).json()
    payout = schema["paths"]["/api/v1/affiliates/payout"]["post"]
    assert {"200", "201", "401", "404", "409", "422"} <= set(payout["responses"])
    conflicts = payout["responses"]["409"]["description"]
    assert {"payout_exceeds_balance", "payout_pending", "idempotency_key_reused"} <= set(
        conflicts.split(", ")
    )
    assert "payout_below_minimum" in payout["responses"]["422"]["description"]
    header = {p["name"] for p in payout["parameters"] if p["in"] == "header"}
    assert header == {"Idempotency-Key"}
    complete = schema["paths"]["/api/v1/admin/payouts/{payout_id}/complete"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(complete["responses"])
