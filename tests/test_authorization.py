"""The authorization matrix: every endpoint against every kind of caller.

Columns, each a real principal acting the way it really would:

- ``anon``      no credentials at all
- ``other``     another user's bearer token (a different tenant)
- ``owner``     the owner's bearer token; on device-signed endpoints, the owner's device
- ``admin``     an admin's bearer token
- ``device``    another user's device, signing the request with its own key
- ``producer``  a producer, signing the request with its own key

The owner has a device that was delivered a signal and ACKed it, and an
affiliate account. Another user's resource answers 404, never 403 (SPEC §1);
an admin-only endpoint answers 403 to a user. No response to ``other`` or
``device`` may carry the owner's ids or email.
"""

# The matrix is a table meant to be read across; its rows stay on one line each.
# ruff: noqa: E501

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.desk import Desk, Terminal
from tests.helpers import PASSWORD, Api, LoggedIn
from tradecast.kit import signing

PRINCIPALS = ("anon", "other", "owner", "admin", "device", "producer")
# Another tenant's device and a stranger's key answer per their own scope: a
# device's reports are its own (report ids are per device), a producer cancels
# only its own signals (404 for an admin's), the Telegram webhook refuses all
# callers without the bot's secret token (401).
# Run order: the owner last, so that what the owner deletes or decides is still
# there for everyone else to be refused.
RUN_ORDER = ("anon", "device", "producer", "other", "admin", "owner")
NOWHERE = "00000000-0000-4000-8000-000000000000"

# fmt: off
# method  path                                              body key          anon other owner admin device producer
MATRIX: list[tuple[str, str, str | None, str]] = [
    ("GET",    "/healthz",                                    None,           "200  200  200  200  200  200"),
    ("GET",    "/readyz",                                     None,           "200  200  200  200  200  200"),
    ("POST",   "/api/v1/auth/register",                       "register",     "201  201  201  201  201  201"),
    ("POST",   "/api/v1/auth/login",                          "login",        "200  200  200  200  200  200"),
    ("POST",   "/api/v1/auth/refresh",                        "refresh",      "401  401  401  401  401  401"),
    ("GET",    "/api/v1/me",                                  None,           "401  200  200  200  401  401"),
    ("PATCH",  "/api/v1/me",                                  "mode",         "401  200  200  200  401  401"),
    ("POST",   "/api/v1/me/telegram-link",                    None,           "401  201  201  201  401  401"),
    ("GET",    "/api/v1/devices",                             None,           "401  200  200  200  401  401"),
    ("POST",   "/api/v1/devices",                             "device",       "401  201  201  201  401  401"),
    ("GET",    "/api/v1/devices/{device}",                    None,           "401  404  200  404  401  401"),
    ("PATCH",  "/api/v1/devices/{device}",                    "rename",       "401  404  200  404  401  401"),
    ("GET",    "/api/v1/devices/{device}/execution-quality",  None,           "401  404  200  404  401  401"),
    ("POST",   "/api/v1/devices/{device}/rotate-secret",      None,           "401  404  200  404  401  401"),
    ("DELETE", "/api/v1/devices/{device}",                    None,           "401  404  204  404  401  401"),
    ("GET",    "/api/v1/exec/whoami",                         None,           "401  401  200  401  200  401"),
    ("GET",    "/api/v1/exec/poll",                           None,           "401  401  200  401  200  401"),
    ("POST",   "/api/v1/exec/ack",                            "ack",          "401  401  200  401  201  401"),
    ("POST",   "/api/v1/exec/fill",                           "fill",         "401  401  201  401  201  401"),
    ("POST",   "/api/v1/exec/error",                          "error",        "401  401  409  401  201  401"),
    ("GET",    "/api/v1/exec/status/{signal}",                None,           "401  200  200  200  401  401"),
    ("GET",    "/api/v1/exec/summary/{signal}",               None,           "401  403  403  200  401  401"),
    ("GET",    "/api/v1/trades",                              None,           "401  200  200  200  401  401"),
    ("GET",    "/api/v1/signals",                             None,           "401  200  200  200  401  401"),
    ("GET",    "/api/v1/signals/{signal}",                    None,           "401  200  200  200  401  401"),
    ("POST",   "/api/v1/signals",                             "signal",       "401  403  403  201  401  201"),
    ("POST",   "/api/v1/signals/{signal}/approve",            None,           "401  201  201  201  401  401"),
    ("POST",   "/api/v1/signals/{signal}/reject",             None,           "401  201  201  201  401  401"),
    ("POST",   "/api/v1/signals/{signal}/cancel",             None,           "401  403  403  200  401  404"),
    ("POST",   "/api/v1/reconciliation/run",                  None,           "401  403  403  200  401  401"),
    ("GET",    "/api/v1/reconciliation/issues",               None,           "401  200  200  200  401  401"),
    ("POST",   f"/api/v1/reconciliation/issues/{NOWHERE}/resolve", None,      "401  403  403  404  401  401"),
    ("GET",    "/api/v1/admin/audit",                         None,           "401  403  403  200  401  401"),
    ("GET",    "/api/v1/admin/producers",                     None,           "401  403  403  200  401  401"),
    ("POST",   "/api/v1/admin/producers",                     "producer",     "401  403  403  201  401  401"),
    ("POST",   "/api/v1/admin/producers/{producer}/rotate-secret", None,      "401  403  403  200  401  401"),
    ("POST",   "/api/v1/admin/producers/{producer}/deactivate", None,         "401  403  403  200  401  401"),
    ("POST",   "/api/v1/affiliates/register",                 None,           "401  201  409  201  401  401"),
    ("GET",    "/api/v1/affiliates/link",                     None,           "401  404  200  404  401  401"),
    ("GET",    "/api/v1/affiliates/stats",                    None,           "401  404  200  404  401  401"),
    ("GET",    "/api/v1/affiliates/history",                  None,           "401  404  200  404  401  401"),
    ("GET",    "/api/v1/affiliates/payouts",                  None,           "401  404  200  404  401  401"),
    ("GET",    f"/api/v1/affiliates/payouts/{NOWHERE}",       None,           "401  404  404  404  401  401"),
    ("POST",   "/api/v1/affiliates/payout",                   "payout",       "401  404  409  404  401  401"),
    ("GET",    "/api/v1/admin/payouts",                       None,           "401  403  403  200  401  401"),
    ("POST",   f"/api/v1/admin/payouts/{NOWHERE}/complete",   "complete",     "401  403  403  404  401  401"),
    ("POST",   f"/api/v1/admin/payouts/{NOWHERE}/fail",       "fail",         "401  403  403  404  401  401"),
    ("GET",    "/api/v1/admin/referrals",                     None,           "401  403  403  200  401  401"),
    ("POST",   f"/api/v1/admin/referrals/{NOWHERE}/clear",    None,           "401  403  403  404  401  401"),
    ("POST",   "/telegram/webhook",                           "update",       "401  401  401  401  401  401"),
]
# fmt: on


@dataclass
class World:
    api: Api
    owner: LoggedIn
    other: LoggedIn
    admin: LoggedIn
    owner_device: Terminal
    other_device: Terminal
    producer_id: str
    producer_secret: str
    signal_id: str

    def fill(self, path: str) -> str:
        return path.format(
            device=self.owner_device.id, signal=self.signal_id, producer=self.producer_id
        )

    def body(self, key: str | None) -> Any:
        bodies: dict[str, Any] = {
            "register": {
                "email": f"new-{uuid.uuid4().hex[:8]}@example.org",
                "password": PASSWORD,
            },
            "login": {"email": self.other.email, "password": PASSWORD},
            "refresh": {"refresh_token": "not-a-token"},
            "mode": {"delivery_mode": "auto"},
            "device": {"device_name": f"new-{uuid.uuid4().hex[:6]}"},
            "rename": {"device_name": f"renamed-{uuid.uuid4().hex[:6]}"},
            # The same report the owner's device already sent: 200, the stored record.
            "ack": {"report_id": "owner-ack", "signal_id": self.signal_id},
            "fill": {
                "report_id": f"fill-{uuid.uuid4().hex[:6]}",
                "signal_id": self.signal_id,
                "fill_price": "1.1",
                "fill_size": "1",
            },
            # Reused report id with other content: the ACK is stored under it.
            "error": {
                "report_id": "owner-ack",
                "signal_id": self.signal_id,
                "status_code": 1,
                "error_message": "x",
            },
            "signal": {"instrument": "EURUSD", "side": "buy", "order_type": "market"},
            "producer": {"name": f"strategy-{uuid.uuid4().hex[:6]}"},
            # Nobody has earned anything: the balance refuses it.
            "payout": {"amount": "50.00", "bank_account": "DE89370400440532013000"},
            "complete": {"reference": "wire-1"},
            "fail": {"reason": "bank refused"},
            "update": {"update_id": 1},
        }
        return None if key is None else bodies[key]

    def secrets(self) -> list[str]:
        """What no other tenant may ever see of the owner."""
        return [self.owner.id, self.owner.email, self.owner_device.id, self.owner_device.secret]

    async def send(self, principal: str, method: str, path: str, body: Any) -> httpx.Response:
        content = b"" if body is None else httpx.Request("POST", "/", json=body).read()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        signed_as = {
            "device": (self.other_device.id, self.other_device.secret),
            "producer": (self.producer_id, self.producer_secret),
        }
        if principal == "owner" and path.startswith("/api/v1/exec/") and "status" not in path:
            if "summary" not in path:
                signed_as["owner"] = (self.owner_device.id, self.owner_device.secret)
        if principal in signed_as:
            key_id, secret = signed_as[principal]
            headers.update(
                signing.sign_request(
                    key_id=key_id, secret=secret, method=method, path=path, body=content
                )
            )
        elif principal != "anon":
            headers.update(getattr(self, principal).headers)
        return await self.api.client.request(method, path, content=content, headers=headers)


async def _world(desk: Desk) -> World:
    api = desk.api
    owner, other = await api.user(), await api.user()
    admin = await desk.admin()
    owner_device = await desk.terminal(owner, name="owner-mt5")
    other_device = await desk.terminal(other, name="other-mt5")
    signal = await desk.publish(instrument="EURUSD")
    assert signal["id"] in await owner_device.pending_ids()
    acked = await owner_device.ack(signal["id"], report_id="owner-ack")
    assert acked.status_code == 201, acked.text
    joined = await api.client.post("/api/v1/affiliates/register", headers=owner.headers)
    assert joined.status_code == 201, joined.text
    created = await api.client.post(
        "/api/v1/admin/producers", json={"name": "matrix"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    producer = created.json()
    return World(
        api, owner, other, admin, owner_device, other_device,
        producer["id"], producer["secret"], signal["id"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    MATRIX,
    ids=[f"{method} {path}" for method, path, _, _ in MATRIX],
)
async def test_authorization_matrix(
    desk: Desk, method: str, path: str, body: str | None, expected: str
) -> None:
    world = await _world(desk)
    wanted = dict(zip(PRINCIPALS, (int(code) for code in expected.split()), strict=True))
    got: dict[str, int] = {}
    leaks: list[str] = []
    for principal in RUN_ORDER:
        response = await world.send(principal, method, world.fill(path), world.body(body))
        got[principal] = response.status_code
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
        if principal in {"other", "device", "producer"}:
            # An id the caller sent may be echoed back ("No device <id>"); nothing else may.
            leaks += [
                f"{principal}: {secret}"
                for secret in world.secrets()
                if secret in response.text and secret not in world.fill(path)
            ]
    assert got == wanted, f"{method} {path}"
    assert not leaks


def test_every_operation_is_in_the_matrix() -> None:
    from tests.test_fuzz import _document

    listed = {(method, path.replace(NOWHERE, "{x}")) for method, path, _, _ in MATRIX}
    undocumented = {
        (method.upper(), path)
        for path, item in _document()["paths"].items()
        for method in item
        if path != "/metrics"
    }
    normalised = {(method, _template(path)) for method, path in listed}
    assert {(m, _template(p)) for m, p in undocumented} <= normalised


def _template(path: str) -> str:
    """Every path parameter as one placeholder, so tables and the document compare."""
    parts = [
        "{x}" if part.startswith("{") and part.endswith("}") else part for part in path.split("/")
    ]
    return "/".join(parts)
