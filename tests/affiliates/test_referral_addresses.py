"""Behind a trusted proxy, the sign-up IP compared is the client's, not the proxy's."""

from __future__ import annotations

import uuid

import pytest

from tests.affiliates.conftest import Program
from tests.helpers import PASSWORD

PROXY = "203.0.113.7"  # the test client's own address, here playing the load balancer


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"trusted_proxies": f"{PROXY}/32"}


async def _sign_up(program: Program, client_ip: str, token: str | None = None) -> str:
    """Register through the proxy for ``client_ip``; the new user's id."""
    body = {"email": f"u-{uuid.uuid4().hex[:8]}@gmail.com", "password": PASSWORD}
    if token is not None:
        body["referral_token"] = token
    response = await program.http.post(
        "/api/v1/auth/register", json=body, headers={"X-Forwarded-For": client_ip}
    )
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


async def _affiliate_from(program: Program, client_ip: str) -> str:
    body = {"email": f"a-{uuid.uuid4().hex[:8]}@gmail.com", "password": PASSWORD}
    response = await program.http.post(
        "/api/v1/auth/register", json=body, headers={"X-Forwarded-For": client_ip}
    )
    assert response.status_code == 201, response.text
    login = await program.api.login(body["email"])
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    registered = await program.http.post("/api/v1/affiliates/register", headers=headers)
    token: str = registered.json()["referral_token"]
    return token


async def test_clients_behind_one_proxy_are_told_apart(program: Program) -> None:
    token = await _affiliate_from(program, "192.0.2.10")
    neighbour = await _sign_up(program, "192.0.2.11", token)
    same_host = await _sign_up(program, "192.0.2.10", token)
    # A client-chosen hop left of the proxy's entry proves nothing and is not believed.
    spoofed = await _sign_up(program, "192.0.2.99, 192.0.2.10", token)

    admin = await program.desk.admin()
    response = await program.http.get("/api/v1/admin/referrals", headers=admin.headers)
    statuses = {r["referred_user_id"]: r["status"] for r in response.json()["items"]}
    assert statuses == {neighbour: "active", same_host: "flagged", spoofed: "flagged"}
