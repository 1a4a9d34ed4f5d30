"""The balances an affiliate sees always equal the sums of their records, and match an
independent model of the rules, whatever sequence of fills and payouts happens."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.affiliates.conftest import Program
from tests.helpers import LoggedIn

CENT = Decimal("0.01")
MINIMUM = Decimal("50")

# Notionals from a cent to 60,000: small ones stay in a tier, large ones cross tiers
# and fund payouts.
notionals = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
    st.decimals(min_value=Decimal(10000), max_value=Decimal(60000), places=2),
)
operations = st.lists(
    st.sampled_from(["fill", "payout", "complete", "fail"]), min_size=1, max_size=10
)


def payout_amounts(available: Decimal) -> st.SearchStrategy[Decimal]:
    """Around the edges that matter: the minimum, the whole balance and just beyond it."""
    edges = [MINIMUM - CENT, MINIMUM, available, available + CENT]
    return st.one_of(
        st.sampled_from([edge for edge in edges if edge > 0]),
        st.decimals(min_value=MINIMUM, max_value=max(MINIMUM, available), places=2),
    )


def rate_for(volume: Decimal) -> Decimal:
    """SPEC §8's table, written out again rather than read from the code under test."""
    if volume >= 1_000_000:
        return Decimal("0.02")
    if volume >= 100_000:
        return Decimal("0.015")
    if volume >= 10_000:
        return Decimal("0.01")
    return Decimal("0.005")


@dataclass
class Model:
    volume: Decimal = Decimal(0)
    earned: Decimal = Decimal(0)
    paid: Decimal = Decimal(0)
    pending: Decimal = Decimal(0)
    pending_id: str | None = None
    settled_ids: list[str] = field(default_factory=list)

    @property
    def available(self) -> Decimal:
        return self.earned - self.paid - self.pending

    def fill(self, notional: Decimal) -> None:
        self.volume += notional
        self.earned += (notional * rate_for(self.volume)).quantize(CENT, ROUND_HALF_EVEN)

    def expected_refusal(self, amount: Decimal) -> tuple[int, str] | None:
        if amount < MINIMUM:
            return 422, "payout_below_minimum"
        if self.pending_id is not None:
            return 409, "payout_pending"
        if amount > self.available:
            return 409, "payout_exceeds_balance"
        return None


async def _step(
    program: Program,
    data: st.DataObject,
    people: tuple[LoggedIn, LoggedIn],
    model: Model,
    kind: str,
) -> None:
    affiliate, trader = people
    if kind == "fill":
        notional = data.draw(notionals, label="notional")
        await program.fill(trader, str(notional))
        model.fill(notional)
    elif kind == "payout":
        amount = data.draw(payout_amounts(model.available), label="amount")
        await _request(program, affiliate, model, amount)
    elif model.pending_id is not None:
        await _settle(program, model, kind)
    elif model.settled_ids:
        # Nothing pending: settling a finished payout again must change nothing.
        body = {"reference": "R"} if kind == "complete" else {"reason": "again"}
        response = await program.settle(model.settled_ids[-1], kind, **body)
        assert response.status_code == 409, response.text


async def _request(program: Program, affiliate: LoggedIn, model: Model, amount: Decimal) -> None:
    response = await program.payout(affiliate, str(amount))
    refusal = model.expected_refusal(amount)
    if refusal is None:
        assert response.status_code == 201, response.text
        model.pending_id = response.json()["id"]
        model.pending = amount
    else:
        assert (response.status_code, response.json()["code"]) == refusal


async def _settle(program: Program, model: Model, kind: str) -> None:
    assert model.pending_id is not None
    body = {"reference": "SEPA-1"} if kind == "complete" else {"reason": "Bounced"}
    response = await program.settle(model.pending_id, kind, **body)
    assert response.status_code == 200, response.text
    if kind == "complete":
        model.paid += model.pending
    model.settled_ids.append(model.pending_id)
    model.pending_id, model.pending = None, Decimal(0)


async def _assert_books_balance(program: Program, affiliate: LoggedIn, model: Model) -> None:
    stats = await program.stats(affiliate)
    figures = {
        k: Decimal(stats[k])
        for k in ("earned_total", "paid_total", "pending_total", "available_balance", "volume_30d")
    }
    assert figures == {
        "earned_total": model.earned,
        "paid_total": model.paid,
        "pending_total": model.pending,
        "available_balance": model.available,
        "volume_30d": model.volume,
    }
    assert figures["available_balance"] >= 0
    # And each figure is the sum of the records the affiliate can list.
    commissions = await program.history(affiliate, limit=200)
    assert sum((Decimal(c["amount"]) for c in commissions), Decimal(0)) == model.earned
    listed = await program.http.get(
        "/api/v1/affiliates/payouts", params={"limit": 200}, headers=affiliate.headers
    )
    by_status: dict[str, Decimal] = {}
    for payout in listed.json()["items"]:
        by_status[payout["status"]] = by_status.get(payout["status"], Decimal(0)) + Decimal(
            payout["amount"]
        )
    assert by_status.get("paid", Decimal(0)) == figures["paid_total"]
    assert by_status.get("pending", Decimal(0)) == figures["pending_total"]


@settings(
    max_examples=25,
    deadline=None,
    # One app and database for all examples; each example starts a new affiliate and
    # referred user, so no example sees another's records.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=operations, data=st.data())
async def test_balances_always_equal_the_sums_of_the_records(
    program: Program, operations: list[str], data: st.DataObject
) -> None:
    affiliate, token = await program.affiliate()
    trader = await program.referred(token)
    model = Model()
    for kind in operations:
        await _step(program, data, (affiliate, trader), model, kind)
        await _assert_books_balance(program, affiliate, model)
