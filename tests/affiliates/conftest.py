"""An affiliate program to test against: affiliates, the users they refer (each from
an address of their own, as real sign-ups come), terminals that fill, an admin who pays."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.desk import Desk, Terminal
from tests.helpers import Api, LoggedIn
from tradecast.config import Settings

_addresses = itertools.count(1)
# Unlisted in CONTRACT_SIZES, so a fill's notional is simply price × size.
INSTRUMENT = "XYZ"


class Program:
    def __init__(self, app: FastAPI, api: Api, desk: Desk, settings: Settings) -> None:
        self.app = app
        self.api = api
        self.desk = desk
        self.settings = settings
        self.clients: list[httpx.AsyncClient] = []
        self.terminals: dict[str, Terminal] = {}

    def client_from(self, address: str) -> httpx.AsyncClient:
        """An HTTP client whose requests come from ``address``."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.clients.append(client)
        return client

    def api_from(self, address: str | None = None) -> Api:
        """A fresh address from TEST-NET-2 unless one is given."""
        n = next(_addresses)
        return Api(self.client_from(address or f"198.51.{n // 250}.{n % 250 + 1}"), self.settings)

    @property
    def http(self) -> httpx.AsyncClient:
        return self.api.client

    async def affiliate(self, **extra: Any) -> tuple[LoggedIn, str]:
        """A user who registered as an affiliate, and their referral token."""
        user = await self.api.user(**extra)
        response = await self.http.post("/api/v1/affiliates/register", headers=user.headers)
        assert response.status_code == 201, response.text
        return user, response.json()["referral_token"]

    async def referred(
        self, token: str | None, *, email: str | None = None, address: str | None = None
    ) -> LoggedIn:
        """A user who signed up with ``token`` from an address of their own, on a public
        mail domain: nothing about them looks like their referrer."""
        email = email or f"trader-{uuid.uuid4().hex[:10]}@gmail.com"
        extra = {"referral_token": token} if token is not None else {}
        return await self.api_from(address).user(email, **extra)

    async def fill(self, user: LoggedIn, price: str, size: str = "1") -> dict[str, Any]:
        """``user``'s terminal fills a fresh signal: a notional of price × size."""
        terminal = self.terminals.get(user.id)
        if terminal is None:
            terminal = self.terminals[user.id] = await self.desk.terminal(user)
        signal = await self.desk.publish(instrument=INSTRUMENT)
        response = await terminal.fill(signal["id"], price, size)
        assert response.status_code == 201, response.text
        filled: dict[str, Any] = response.json()
        return filled

    async def stats(self, user: LoggedIn) -> dict[str, Any]:
        response = await self.http.get("/api/v1/affiliates/stats", headers=user.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def history(self, user: LoggedIn, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/api/v1/affiliates/history", params=params, headers=user.headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def amounts(self, user: LoggedIn) -> list[Decimal]:
        """The affiliate's commission amounts, oldest first."""
        return [Decimal(c["amount"]) for c in reversed(await self.history(user, limit=200))]

    async def payout(
        self,
        user: LoggedIn,
        amount: str,
        *,
        bank_account: str = "DE89370400440532013000",
        key: str | None = None,
    ) -> httpx.Response:
        headers = dict(user.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(
            "/api/v1/affiliates/payout",
            json={"amount": amount, "bank_account": bank_account},
            headers=headers,
        )

    async def settle(self, payout_id: str, outcome: str, **body: str) -> httpx.Response:
        admin = await self.desk.admin()
        return await self.http.post(
            f"/api/v1/admin/payouts/{payout_id}/{outcome}", json=body, headers=admin.headers
        )

    async def funded(self, notional: str) -> tuple[LoggedIn, LoggedIn, Decimal]:
        """An affiliate whose referred user filled ``notional``, and what that earned."""
        affiliate, token = await self.affiliate()
        trader = await self.referred(token)
        await self.fill(trader, notional)
        earned = Decimal((await self.stats(affiliate))["earned_total"])
        return affiliate, trader, earned

    async def relogin(self, *users: LoggedIn) -> None:
        """Fresh tokens after the clock moved past their lifetime (the admin's too)."""
        for user in (*users, await self.desk.admin()):
            response = await self.api.login(user.email, user.password)
            assert response.status_code == 200, response.text
            user.access_token = response.json()["access_token"]
            user.headers["Authorization"] = f"Bearer {user.access_token}"


@pytest.fixture
async def program(app: FastAPI, api: Api, desk: Desk, settings: Settings) -> AsyncIterator[Program]:
    program = Program(app, api, desk, settings)
    yield program
    for client in program.clients:
        await client.aclose()
