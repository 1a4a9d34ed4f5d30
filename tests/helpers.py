"""Test helpers that act as real clients: they register, log in and sign like users do."""

from __future__ import annotations

import itertools
import json as jsonlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from tradecast.config import Settings
from tradecast.db import Database
from tradecast.kit import clock, signing
from tradecast.users import service as users
from tradecast.users.models import Role

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


@contextmanager
def engine_statements(app: FastAPI) -> Iterator[list[str]]:
    """Every statement the app sends through its SQLAlchemy engine while the block runs."""
    seen: list[str] = []
    engine = app.state.db.engine.sync_engine

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@dataclass
class LoggedIn:
    """A user signed in through the API, with the tokens the login returned."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    headers: dict[str, str] = field(default_factory=dict)


class Api:
    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def register(
        self, email: str | None = None, password: str = PASSWORD, **extra: Any
    ) -> httpx.Response:
        email = email or f"user{next(_counter)}-{uuid.uuid4().hex[:6]}@example.org"
        return await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password, **extra}
        )

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )

    async def user(
        self, email: str | None = None, password: str = PASSWORD, **extra: Any
    ) -> LoggedIn:
        """Register a fresh user and log in as them."""
        registered = await self.register(email, password, **extra)
        assert registered.status_code == 201, registered.text
        body = registered.json()
        return await self._login_as(body["id"], body["email"], password)

    async def admin(self, role: Role = Role.ADMIN) -> LoggedIn:
        """An admin made as `tradecast create-admin` makes one, then logged in over HTTP."""
        email = f"admin{next(_counter)}-{uuid.uuid4().hex[:6]}@example.org"
        db = Database(self.settings.resolved_database_url)
        try:
            async with db.sessionmaker() as session:
                created = await users.register(session, self.settings, email, PASSWORD, role=role)
                await session.commit()
        finally:
            await db.dispose()
        return await self._login_as(str(created.id), email, PASSWORD)

    async def signed(
        self,
        method: str,
        path: str,
        *,
        key_id: str,
        secret: str,
        params: dict[str, str] | list[tuple[str, str]] | None = None,
        json: Any = None,
        content: bytes | None = None,
        timestamp: int | None = None,
        nonce: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A request signed the way a device or producer signs it (SPEC §2)."""
        body = content if content is not None else b""
        extra = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            extra.setdefault("Content-Type", "application/json")
        pairs = list(params.items()) if isinstance(params, dict) else list(params or [])
        signed = signing.sign_request(
            key_id=key_id,
            secret=secret,
            method=method,
            path=path,
            query=pairs,
            body=body,
            timestamp=int(clock.utcnow().timestamp()) if timestamp is None else timestamp,
            nonce=nonce,
        )
        return await self.client.request(
            method, path, params=pairs or None, content=body, headers={**signed, **extra}
        )

    async def _login_as(self, user_id: str, email: str, password: str) -> LoggedIn:
        response = await self.login(email, password)
        assert response.status_code == 200, response.text
        tokens = response.json()
        return LoggedIn(
            id=user_id,
            email=email,
            password=password,
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and code)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "code", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body
