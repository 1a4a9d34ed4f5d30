from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tests.affiliates.conftest import Program
from tests.helpers import LoggedIn, assert_problem
from tradecast.affiliates.models import Payout, PayoutStatus
from tradecast.db import Database
from tradecast.outbox.models import OutboxEvent

# 20,000 of referred volume at tier 2 earns exactly 200.00.
FUNDING = "20000"


async def _payout_ok(program: Program, user: LoggedIn, amount: str, **kw: Any) -> dict[str, Any]:
    response = await program.payout(user, amount, **kw)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _balances(program: Program, user: LoggedIn) -> tuple[str, str, str, str]:
    stats = await program.stats(user)
    return (
        stats["earned_total"],
        stats["available_balance"],
        stats["pending_total"],
        stats["paid_total"],
    )


async def test_a_payout_request_is_pending_and_reserves_its_amount(program: Program) -> None:
    affiliate, _, earned = await program.funded(FUNDING)
    assert earned == Decimal("200.00")
    payout = await _payout_ok(
        program, affiliate, "75.5", bank_account="  GB33 BUKB 2020 1555 5555 55 "
    )
    assert payout["amount"] == "75.5"
    assert payout["currency"] == "USD"
    assert payout["status"] == "pending"
    assert payout["bank_account"] == "GB33 BUKB 2020 1555 5555 55"
    assert payout["reference"] is None
    assert payout["completed_at"] is None
    assert await _balances(program, affiliate) == ("200", "124.5", "75.5", "0")


async def test_below_the_minimum_is_422(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    problem = assert_problem(await program.payout(affiliate, "49.99"), 422, "payout_below_minimum")
    assert problem["errors"] == [{"field": "amount", "message": "must be at least 50 USD"}]
    assert (await program.payout(affiliate, "50")).status_code == 201


@pytest.mark.parametrize(
    "amount",
    ["50.001", "-60", "0", "1e2", "60,00", "", True, 50.001, None],
    ids=["3dp", "negative", "zero", "exponent", "comma", "empty", "bool", "number-3dp", "null"],
)
async def test_malformed_amounts_are_422(program: Program, amount: object) -> None:
    affiliate, _ = await program.affiliate()
    response = await program.http.post(
        "/api/v1/affiliates/payout",
        json={"amount": amount, "bank_account": "DE89370400440532013000"},
        headers=affiliate.headers,
    )
    problem = assert_problem(response, 422)
    assert "amount" in {error["field"] for error in problem["errors"]}


async def test_a_json_number_amount_is_read_exactly(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    response = await program.http.post(
        "/api/v1/affiliates/payout",
        content=b'{"amount": 60.10, "bank_account": "DE89370400440532013000"}',
        headers={**affiliate.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == "60.1"


@pytest.mark.parametrize("account", ["", "abc", "x" * 65, "DE89<script>", "-DE89370400"])
async def test_malformed_bank_accounts_are_422(program: Program, account: str) -> None:
    affiliate, _ = await program.affiliate()
    problem = assert_problem(await program.payout(affiliate, "60", bank_account=account), 422)
    assert "bank_account" in {error["field"] for error in problem["errors"]}


async def test_above_the_available_balance_is_409(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    assert_problem(await program.payout(affiliate, "200.01"), 409, "payout_exceeds_balance")
    assert (await program.payout(affiliate, "200.00")).status_code == 201


async def test_a_second_request_while_one_is_pending_is_409(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    await _payout_ok(program, affiliate, "60")
    assert_problem(await program.payout(affiliate, "60"), 409, "payout_pending")
    assert await _balances(program, affiliate) == ("200", "140", "60", "0")


async def test_complete_moves_pending_to_paid(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    payout = await _payout_ok(program, affiliate, "80")
    admin = await program.desk.admin()
    response = await program.settle(payout["id"], "complete", reference="  SEPA-2026-0042 ")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["reference"], body["processed_by"]) == (
        "paid",
        "SEPA-2026-0042",
        admin.id,
    )
    assert (body["user_id"], body["completed_at"] is not None) == (affiliate.id, True)
    assert await _balances(program, affiliate) == ("200", "120", "0", "80")
    # Paid: another request may follow, for what is left.
    assert_problem(await program.payout(affiliate, "120.01"), 409, "payout_exceeds_balance")
    assert (await program.payout(affiliate, "120")).status_code == 201


async def test_fail_returns_the_amount_to_the_balance(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    payout = await _payout_ok(program, affiliate, "150")
    response = await program.settle(payout["id"], "fail", reason="Account closed")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["failure_reason"]) == (
        "failed",
        "Account closed",
    )
    assert await _balances(program, affiliate) == ("200", "200", "0", "0")
    own = await program.http.get(
        f"/api/v1/affiliates/payouts/{payout['id']}", headers=affiliate.headers
    )
    assert (own.json()["status"], own.json()["failure_reason"]) == ("failed", "Account closed")
    assert (await program.payout(affiliate, "200")).status_code == 201


async def test_only_a_pending_payout_can_be_completed_or_failed(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    paid = await _payout_ok(program, affiliate, "60")
    assert (await program.settle(paid["id"], "complete", reference="R1")).status_code == 200
    assert_problem(
        await program.settle(paid["id"], "complete", reference="R2"), 409, "payout_not_pending"
    )
    assert_problem(await program.settle(paid["id"], "fail", reason="x"), 409, "payout_not_pending")
    failed = await _payout_ok(program, affiliate, "60")
    assert (await program.settle(failed["id"], "fail", reason="Bounced")).status_code == 200
    assert_problem(
        await program.settle(failed["id"], "complete", reference="R3"), 409, "payout_not_pending"
    )
    assert_problem(
        await program.settle(str(uuid.uuid4()), "complete", reference="R"), 404, "payout_not_found"
    )
    assert await _balances(program, affiliate) == ("200", "140", "0", "60")


async def test_settling_needs_a_reference_or_reason_and_an_admin(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    payout = await _payout_ok(program, affiliate, "60")
    assert_problem(await program.settle(payout["id"], "complete"), 422)
    assert_problem(await program.settle(payout["id"], "complete", reference="   "), 422)
    assert_problem(await program.settle(payout["id"], "fail"), 422)
    for outcome, body in (("complete", {"reference": "R"}), ("fail", {"reason": "x"})):
        response = await program.http.post(
            f"/api/v1/admin/payouts/{payout['id']}/{outcome}", json=body, headers=affiliate.headers
        )
        assert_problem(response, 403, "admin_required")
    assert (await program.stats(affiliate))["pending_total"] == "60"


async def test_requests_and_settlements_are_audited_without_the_account_number(
    program: Program,
) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    first = await _payout_ok(program, affiliate, "60", bank_account="DE89370400440532013000")
    await program.settle(first["id"], "complete", reference="R-1")
    second = await _payout_ok(program, affiliate, "70", bank_account="DE89370400440532013000")
    await program.settle(second["id"], "fail", reason="Bounced")

    admin = await program.desk.admin()
    events = await program.http.get(
        "/api/v1/admin/audit", params={"target_id": first["id"]}, headers=admin.headers
    )
    by_action = {e["action"]: e for e in events.json()["items"]}
    assert set(by_action) == {"payout.requested", "payout.completed"}
    requested = by_action["payout.requested"]
    assert requested["actor_id"] == affiliate.id
    assert requested["metadata"] == {
        "amount": "60",
        "currency": "USD",
        "bank_account_last4": "3000",
    }
    assert by_action["payout.completed"]["actor_id"] == admin.id
    assert by_action["payout.completed"]["metadata"]["reference"] == "R-1"
    failed = await program.http.get(
        "/api/v1/admin/audit",
        params={"target_id": second["id"], "action": "payout.failed"},
        headers=admin.headers,
    )
    assert failed.json()["items"][0]["metadata"]["failure_reason"] == "Bounced"
    everything = (
        await program.http.get("/api/v1/admin/audit", params={"limit": 200}, headers=admin.headers)
    ).text
    assert "DE89370400440532013000" not in everything


async def test_status_changes_are_handed_to_the_outbox(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    payout = await _payout_ok(program, affiliate, "60")
    await program.settle(payout["id"], "complete", reference="R-9")
    db = Database(program.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            events = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.topic == "payout.status_changed")
                    .order_by(OutboxEvent.created_at)
                )
            ).all()
    finally:
        await db.dispose()
    assert [e.payload["status"] for e in events] == ["pending", "paid"]
    assert events[1].payload == {
        "user_id": affiliate.id,
        "affiliate_id": events[1].payload["affiliate_id"],
        "payout_id": payout["id"],
        "status": "paid",
        "amount": "60",
        "currency": "USD",
        "reference": "R-9",
        "reason": None,
    }


async def test_same_idempotency_key_and_body_answers_the_original_payout(
    program: Program,
) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    first = await program.payout(affiliate, "60.00", key="pay-1")
    assert first.status_code == 201
    again = await program.payout(affiliate, "60", key="pay-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    # Still the same payout once it has been paid, and nothing new was requested.
    await program.settle(first.json()["id"], "complete", reference="R")
    later = await program.payout(affiliate, "60", key="pay-1")
    assert (later.status_code, later.json()["status"]) == (200, "paid")
    assert await _balances(program, affiliate) == ("200", "140", "0", "60")


async def test_same_idempotency_key_with_another_body_is_409(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    assert (await program.payout(affiliate, "60", key="pay-1")).status_code == 201
    assert_problem(
        await program.payout(affiliate, "61", key="pay-1"), 409, "idempotency_key_reused"
    )
    assert_problem(
        await program.payout(
            affiliate, "60", key="pay-1", bank_account="FR7630006000011234567890189"
        ),
        409,
        "idempotency_key_reused",
    )


async def test_idempotency_keys_belong_to_one_affiliate(program: Program) -> None:
    first, _, _ = await program.funded(FUNDING)
    second, _, _ = await program.funded(FUNDING)
    one = await program.payout(first, "60", key="shared")
    other = await program.payout(second, "60", key="shared")
    assert (one.status_code, other.status_code) == (201, 201)
    assert one.json()["id"] != other.json()["id"]


async def test_concurrent_retries_with_one_key_make_one_payout(program: Program) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    responses = await asyncio.gather(
        *(program.payout(affiliate, "60", key="retry") for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await program.stats(affiliate))["pending_total"] == "60"


async def test_twenty_concurrent_requests_for_more_than_half_pay_out_once(
    program: Program,
) -> None:
    affiliate, _, _ = await program.funded(FUNDING)
    responses = await asyncio.gather(*(program.payout(affiliate, "100.01") for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19
    codes = {r.json()["code"] for r in responses if r.status_code == 409}
    assert codes <= {"payout_pending", "payout_exceeds_balance"}
    assert await _balances(program, affiliate) == ("200", "99.99", "100.01", "0")


async def test_the_database_itself_refuses_a_second_pending_payout(program: Program) -> None:
    """The partial unique index holds even for a writer that skipped the row lock."""
    affiliate, _, _ = await program.funded(FUNDING)
    payout = await _payout_ok(program, affiliate, "60")
    db = Database(program.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            stored = await session.get(Payout, uuid.UUID(payout["id"]))
            assert stored is not None

            def copy(status: PayoutStatus) -> Payout:
                columns = {c.key: getattr(stored, c.key) for c in Payout.__table__.columns}
                return Payout(**{**columns, "id": uuid.uuid4(), "status": status})

            session.add(copy(PayoutStatus.PAID))
            await session.flush()
            session.add(copy(PayoutStatus.PENDING))
            with pytest.raises(IntegrityError):
                await session.flush()
            await session.rollback()
    finally:
        await db.dispose()
