"""Linking a chat to an account with a one-time code (SPEC §3, §10)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from tests.helpers import Api
from tests.telegram.conftest import Chat, link_code, telegram_linked
from tradecast.config import Settings
from tradecast.db import Database
from tradecast.kit import clock
from tradecast.telegram.models import TelegramLinkCode


async def test_a_link_code_links_the_chat(api: Api, chat: Chat) -> None:
    user = await api.user()
    assert await telegram_linked(api, user) is False
    response = await api.client.post("/api/v1/me/telegram-link", headers=user.headers)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    lifetime = datetime.fromisoformat(body["expires_at"]) - clock.utcnow()
    assert timedelta(minutes=9, seconds=50) < lifetime <= timedelta(minutes=10)
    reply = await chat.send(f"/link {body['code']}")
    assert reply.startswith(f"Linked: this chat now belongs to {user.email}")
    assert await telegram_linked(api, user) is True


async def test_the_link_code_endpoint_needs_a_signed_in_user(api: Api) -> None:
    response = await api.client.post("/api/v1/me/telegram-link")
    assert response.status_code == 401


async def test_a_code_works_once(api: Api, chat: Chat, new_chat: object) -> None:
    user = await api.user()
    code = await link_code(api, user)
    assert (await chat.send(f"/link {code}")).startswith("Linked")
    other = new_chat()  # type: ignore[operator]
    assert await other.send(f"/link {code}") == "This code was already used; create a new one"
    # Telegram delivering the same /link again to the chat that used it is answered kindly.
    assert await chat.send(f"/link {code}") == f"This chat is already linked to {user.email}."


async def test_an_expired_code_is_refused(api: Api, chat: Chat) -> None:
    user = await api.user()
    code = await link_code(api, user)
    clock.advance(timedelta(minutes=10, seconds=1))
    reply = await chat.send(f"/link {code}")
    assert reply == "This code has expired (codes live 10 minutes); create a new one"
    assert await telegram_linked(api, user) is False


async def test_an_unknown_code_and_a_missing_code_are_explained(api: Api, chat: Chat) -> None:
    assert (await chat.send("/link ABCD-EFGH-JKMN")).startswith("This code is not known")
    assert (await chat.send("/link")).startswith("Send /link CODE")


async def test_codes_forgive_case_dashes_and_look_alikes(api: Api, chat: Chat) -> None:
    user = await api.user()
    code = await link_code(api, user)
    typed = code.replace("-", " ").lower().replace("0", "o").replace("1", "l")
    assert (await chat.send(f"/link {typed}")).startswith("Linked")


async def test_a_new_code_replaces_the_unused_one(api: Api, chat: Chat) -> None:
    user = await api.user()
    first = await link_code(api, user)
    second = await link_code(api, user)
    assert (await chat.send(f"/link {first}")).startswith("This code is not known")
    assert (await chat.send(f"/link {second}")).startswith("Linked")


async def test_only_a_hash_of_the_code_is_stored(api: Api, settings: Settings) -> None:
    user = await api.user()
    code = await link_code(api, user)
    db = Database(settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            (row,) = (await session.scalars(select(TelegramLinkCode))).all()
    finally:
        await db.dispose()
    stored = [str(value) for value in vars(row).values()]
    assert row.user_id == uuid.UUID(user.id)
    assert not any(code.replace("-", "") in value.replace("-", "") for value in stored)


async def test_linking_another_account_moves_the_chat(
    api: Api, chat: Chat, settings: Settings
) -> None:
    first, second = await api.user(), await api.user()
    await chat.link(api, first)
    reply = await chat.link(api, second)
    assert "no longer linked" in reply
    assert (await telegram_linked(api, first), await telegram_linked(api, second)) == (False, True)
    assert (await chat.send("/start")).startswith(
        f"Welcome back. This chat is linked to {second.email}"
    )


async def test_linking_from_another_chat_moves_the_account(
    api: Api, chat: Chat, new_chat: object
) -> None:
    user = await api.user()
    await chat.link(api, user)
    phone = new_chat()  # type: ignore[operator]
    assert (await phone.link(api, user)).startswith("Linked")
    assert (await phone.send("/devices")).startswith("No devices yet")
    assert (await chat.send("/devices")).startswith("This chat is not linked")


async def test_linking_is_audited(api: Api, chat: Chat) -> None:
    user = await api.user()
    await chat.link(api, user)
    admin = await api.admin()
    events = await api.client.get(
        "/api/v1/admin/audit", params={"action": "telegram.linked"}, headers=admin.headers
    )
    (event,) = events.json()["items"]
    assert event["target_id"] == user.id
    assert event["metadata"]["chat_id"] == chat.id
