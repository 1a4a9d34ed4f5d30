"""Rate limits of SPEC §9 in one process (in-memory counters)."""

from __future__ import annotations

import time

import pytest
from fastapi import Depends, FastAPI

from tests.desk import Desk, Terminal
from tests.helpers import Api, assert_problem
from tradecast.ratelimit import PAYOUT, rate_limited
from tradecast.users.dependencies import CurrentUser


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"rate_limits_enabled": True}


async def _whoami(terminal: Terminal, secret: str | None = None) -> int:
    response = await terminal.api.signed(
        "GET", "/api/v1/exec/whoami", key_id=terminal.id, secret=secret or terminal.secret
    )
    return response.status_code


async def test_eleventh_wrong_password_in_a_minute_is_429_with_retry_after(api: Api) -> None:
    user = await api.user()
    for _ in range(9):  # the login in api.user() was the first attempt
        assert (await api.login(user.email, "wrong password!")).status_code == 401
    refused = await api.login(user.email.upper(), "wrong password!")
    body = assert_problem(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "10" in body["detail"]
    # Even the right password waits: the limit counts attempts, not failures.
    assert_problem(await api.login(user.email, user.password), 429, "rate_limited")
    # Another account from the same address has its own budget.
    other = await api.user()
    assert (await api.login(other.email, other.password)).status_code == 200


async def test_device_sending_45_signed_requests_in_a_second_gets_429s(desk: Desk) -> None:
    terminal = await desk.terminal()
    statuses: list[int] = []
    started: list[float] = []
    for _ in range(45):
        started.append(time.monotonic())
        statuses.append(await _whoami(terminal))
    assert statuses[:20] == [200] * 20
    # The moving window: of the requests sent within one second, only 20 pass. (A margin
    # of 0.2 s covers the gap between sending a request and the server counting it.)
    burst = [status for status, at in zip(statuses, started, strict=True) if at - started[0] < 0.8]
    assert burst.count(200) <= 20
    if len(burst) > 20:
        assert burst[20:] == [429] * (len(burst) - 20)
    refused = await terminal.api.signed(
        "GET", "/api/v1/exec/whoami", key_id=terminal.id, secret=terminal.secret
    )
    if refused.status_code == 429:
        assert_problem(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "1"
    # Each device has its own budget.
    assert await _whoami(await desk.terminal()) == 200


async def test_unsigned_junk_does_not_use_up_a_devices_budget(desk: Desk) -> None:
    terminal = await desk.terminal()
    forged = [await _whoami(terminal, secret="not-the-secret") for _ in range(30)]
    assert set(forged) == {401}
    assert [await _whoami(terminal) for _ in range(20)] == [200] * 20


@pytest.mark.parametrize("settings_overrides", [{"rate_limits_enabled": False}], ids=["off"])
async def test_rate_limits_can_be_switched_off(api: Api) -> None:
    user = await api.user()
    statuses = {(await api.login(user.email, "wrong password!")).status_code for _ in range(12)}
    assert statuses == {401}


async def _user_key(user: CurrentUser) -> str:
    return str(user.id)


async def test_rate_limited_dependency_counts_per_principal(app: FastAPI, api: Api) -> None:
    # The factory as an endpoint uses it: one request per 10 s per signed-in user
    # (the payout rule), on a route added to the real app for this test.
    async def guarded(_: CurrentUser) -> dict[str, str]:
        return {"ok": "yes"}

    app.add_api_route(
        "/test/guarded",
        guarded,
        methods=["POST"],
        dependencies=[Depends(rate_limited(PAYOUT, key=_user_key))],
    )
    first, second = await api.user(), await api.user()
    ok = await api.client.post("/test/guarded", headers=first.headers)
    assert ok.status_code == 200, ok.text
    refused = await api.client.post("/test/guarded", headers=first.headers)
    assert_problem(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert (await api.client.post("/test/guarded", headers=second.headers)).status_code == 200


async def test_one_payout_request_per_ten_seconds_per_affiliate(api: Api) -> None:
    async def affiliate() -> dict[str, str]:
        user = await api.user()
        registered = await api.client.post("/api/v1/affiliates/register", headers=user.headers)
        assert registered.status_code == 201, registered.text
        return user.headers

    first, second = await affiliate(), await affiliate()
    payout = {"amount": "60.00", "bank_account": "DE89370400440532013000"}
    # Counted whatever the outcome: here the balance is short (409).
    earlier = await api.client.post("/api/v1/affiliates/payout", json=payout, headers=first)
    assert earlier.status_code == 409, earlier.text
    refused = await api.client.post("/api/v1/affiliates/payout", json=payout, headers=first)
    assert_problem(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    other = await api.client.post("/api/v1/affiliates/payout", json=payout, headers=second)
    assert other.status_code == 409, other.text
