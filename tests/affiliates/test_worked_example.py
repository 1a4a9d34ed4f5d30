"""The worked example of docs/AFFILIATES.md, step by step, so the document stays true."""

from __future__ import annotations

import pytest

from tests.affiliates.conftest import Program
from tests.helpers import assert_problem


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"contract_sizes": "EURUSD:100000"}


async def test_the_worked_example(program: Program) -> None:
    alice, token = await program.affiliate()
    bob = await program.referred(token)
    terminal = await program.desk.terminal(bob)
    signal = await program.desk.publish(instrument="EURUSD")
    for price, size in (("1.08000", "0.05"), ("1.08125", "0.04"), ("1.08250", "0.03")):
        assert (await terminal.fill(signal["id"], price, size)).status_code == 201

    history = list(reversed(await program.history(alice)))
    assert [(c["notional"], c["tier"], c["rate"], c["amount"]) for c in history] == [
        ("5400", 1, "0.005", "27"),
        ("4325", 1, "0.005", "21.62"),
        ("3247.5", 2, "0.01", "32.48"),
    ]
    stats = await program.stats(alice)
    assert (stats["volume_30d"], stats["commission_tier"], stats["earned_total"]) == (
        "12972.5",
        2,
        "81.1",
    )

    first = (await program.payout(alice, "60.00", key="march-1")).json()
    assert (await program.stats(alice))["available_balance"] == "21.1"
    assert_problem(await program.payout(alice, "50.00"), 409, "payout_pending")
    await program.settle(first["id"], "fail", reason="IBAN closed")
    assert (await program.stats(alice))["available_balance"] == "81.1"
    second = (await program.payout(alice, "81.10", key="march-2")).json()
    await program.settle(second["id"], "complete", reference="SEPA-0001")
    stats = await program.stats(alice)
    assert (stats["paid_total"], stats["pending_total"], stats["available_balance"]) == (
        "81.1",
        "0",
        "0",
    )
