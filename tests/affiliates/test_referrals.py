from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from tests.affiliates.conftest import Program
from tests.helpers import LoggedIn, assert_problem
from tradecast.kit import clock


async def _referrals(program: Program, **params: str) -> list[dict[str, Any]]:
    admin = await program.desk.admin()
    response = await program.http.get(
        "/api/v1/admin/referrals", params=params, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _referral_of(program: Program, user: LoggedIn) -> dict[str, Any]:
    (found,) = [r for r in await _referrals(program) if r["referred_user_id"] == user.id]
    return found


async def test_a_sign_up_with_a_token_is_referred_by_that_affiliate(program: Program) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    referral = await _referral_of(program, trader)
    assert referral["affiliate_user_id"] == affiliate.id
    assert (referral["status"], referral["source"], referral["flag_reasons"]) == (
        "active",
        "signup",
        [],
    )
    assert (await program.stats(affiliate))["referral_count"] == 1


async def test_an_unknown_token_does_not_block_the_sign_up(program: Program) -> None:
    response = await program.api_from().register(
        f"x-{uuid.uuid4().hex[:8]}@gmail.com", referral_token="nobody-has-this"
    )
    assert response.status_code == 201, response.text
    assert await _referrals(program) == []


async def test_the_same_sign_up_ip_flags_the_referral_and_it_earns_nothing(
    program: Program,
) -> None:
    affiliate, token = await program.affiliate()
    # The affiliate registered from the default test client's address: so does this user.
    trader = await program.api.user(f"t-{uuid.uuid4().hex[:8]}@gmail.com", referral_token=token)
    await program.fill(trader, "9000")
    stats = await program.stats(affiliate)
    assert (stats["earned_total"], stats["available_balance"], stats["volume_30d"]) == (
        "0",
        "0",
        "0",
    )
    assert stats["referral_count"] == 1
    assert await program.history(affiliate) == []
    referral = await _referral_of(program, trader)
    assert (referral["status"], referral["flag_reasons"]) == ("flagged", ["same_signup_ip"])
    assert referral["withheld_amount"] == "45"


async def test_each_flag_is_audited(program: Program) -> None:
    _, token = await program.affiliate()
    trader = await program.api.user(f"t-{uuid.uuid4().hex[:8]}@gmail.com", referral_token=token)
    referral = await _referral_of(program, trader)
    admin = await program.desk.admin()
    response = await program.http.get(
        "/api/v1/admin/audit", params={"action": "referral.flagged"}, headers=admin.headers
    )
    (event,) = response.json()["items"]
    assert event["target_id"] == referral["id"]
    assert event["metadata"]["reasons"] == ["same_signup_ip"]
    assert event["metadata"]["referred_user_id"] == trader.id


async def test_a_shared_company_domain_within_the_window_is_flagged(program: Program) -> None:
    _, token = await program.affiliate(email=f"boss-{uuid.uuid4().hex[:6]}@acme-trading.io")
    clock.advance(timedelta(hours=1, minutes=59))
    colleague = await program.referred(token, email="colleague@ACME-Trading.io")
    referral = await _referral_of(program, colleague)
    assert (referral["status"], referral["flag_reasons"]) == ("flagged", ["same_email_domain"])


async def test_a_shared_company_domain_outside_the_window_is_not_flagged(
    program: Program,
) -> None:
    affiliate, token = await program.affiliate(email="boss@acme-trading.io")
    clock.advance(timedelta(hours=2))
    await program.relogin(affiliate)
    colleague = await program.referred(token, email="colleague@acme-trading.io")
    assert (await _referral_of(program, colleague))["status"] == "active"


async def test_a_shared_public_mail_domain_is_not_flagged(program: Program) -> None:
    _, token = await program.affiliate(email=f"a-{uuid.uuid4().hex[:6]}@gmx.de")
    friend = await program.referred(token, email=f"b-{uuid.uuid4().hex[:6]}@gmx.de")
    assert (await _referral_of(program, friend))["status"] == "active"


async def test_both_signs_are_recorded(program: Program) -> None:
    _, token = await program.affiliate(email="boss@acme-trading.io")
    twin = await program.api.user("twin@acme-trading.io", referral_token=token)
    referral = await _referral_of(program, twin)
    assert referral["flag_reasons"] == ["same_signup_ip", "same_email_domain"]


async def test_clearing_releases_withheld_commissions_and_later_fills_earn(
    program: Program,
) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.api.user(f"t-{uuid.uuid4().hex[:8]}@gmail.com", referral_token=token)
    await program.fill(trader, "1001")
    referral = await _referral_of(program, trader)
    assert referral["withheld_amount"] == "5"
    assert await _referrals(program, status="flagged") == [referral]

    admin = await program.desk.admin()
    cleared = await program.http.post(
        f"/api/v1/admin/referrals/{referral['id']}/clear", headers=admin.headers
    )
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert (body["status"], body["cleared_by"], body["withheld_amount"]) == (
        "cleared",
        admin.id,
        "0",
    )
    assert body["cleared_at"] is not None
    # Released at the rate it was recorded with; its volume now counts toward the tier.
    assert await program.amounts(affiliate) == [Decimal("5.00")]
    await program.fill(trader, "9000")
    assert await program.amounts(affiliate) == [Decimal("5.00"), Decimal("90.00")]
    stats = await program.stats(affiliate)
    assert (stats["earned_total"], stats["volume_30d"]) == ("95", "10001")
    assert await _referrals(program, status="flagged") == []

    events = await program.http.get(
        "/api/v1/admin/audit", params={"action": "referral.cleared"}, headers=admin.headers
    )
    (event,) = events.json()["items"]
    assert event["metadata"] == {"released_commissions": 1, "released_amount": "5"}


async def test_only_a_flagged_referral_can_be_cleared(program: Program) -> None:
    _, token = await program.affiliate()
    trader = await program.referred(token)
    referral = await _referral_of(program, trader)
    admin = await program.desk.admin()
    response = await program.http.post(
        f"/api/v1/admin/referrals/{referral['id']}/clear", headers=admin.headers
    )
    assert_problem(response, 409, "referral_not_flagged")
    response = await program.http.post(
        f"/api/v1/admin/referrals/{uuid.uuid4()}/clear", headers=admin.headers
    )
    assert_problem(response, 404, "referral_not_found")


async def test_referrals_are_for_admins_only(program: Program) -> None:
    user, token = await program.affiliate()
    await program.api.user(referral_token=token)
    (referral,) = await _referrals(program)
    assert_problem(await program.http.get("/api/v1/admin/referrals", headers=user.headers), 403)
    response = await program.http.post(
        f"/api/v1/admin/referrals/{referral['id']}/clear", headers=user.headers
    )
    assert_problem(response, 403)


async def test_a_referral_is_for_good(program: Program) -> None:
    first, token = await program.affiliate()
    trader = await program.referred(token)
    _, other_token = await program.affiliate()
    # Signing up again (same email) with another token changes nothing.
    again = await program.api_from().register(trader.email, referral_token=other_token)
    assert_problem(again, 409, "email_taken")
    assert (await _referral_of(program, trader))["affiliate_user_id"] == first.id
