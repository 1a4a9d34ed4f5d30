from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.helpers import PASSWORD, Api, assert_problem
from tradecast.kit import clock


async def test_register_login_and_me(api: Api) -> None:
    registered = await api.register("Trader@Example.org")
    assert registered.status_code == 201
    body = registered.json()
    assert set(body) == {"id", "email", "role", "created_at"}
    assert body["email"] == "trader@example.org"
    assert body["role"] == "user"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")

    login = await api.login("TRADER@example.org")
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900

    me = await api.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == {
        "id": body["id"],
        "email": "trader@example.org",
        "role": "user",
        "created_at": body["created_at"],
        "delivery_mode": "auto",
        "telegram_linked": False,
    }


async def test_same_email_in_other_case_is_conflict(api: Api) -> None:
    assert (await api.register("dup@example.org")).status_code == 201
    assert_problem(await api.register("DUP@Example.ORG"), 409, "email_taken")


async def test_concurrent_registrations_of_one_email_create_one_account(api: Api) -> None:
    results = await asyncio.gather(*(api.register("race@example.org") for _ in range(5)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 409, 409, 409, 409]


async def test_short_password_is_rejected_per_field(api: Api) -> None:
    problem = assert_problem(await api.register(password="12345"), 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["password"]


async def test_overlong_password_and_bad_email_are_rejected(api: Api) -> None:
    problem = assert_problem(await api.register("not-an-email", password="x" * 129), 422)
    assert {e["field"] for e in problem["errors"]} == {"email", "password"}


async def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    user = await api.user()
    wrong = assert_problem(
        await api.login(user.email, "wrong password"), 401, "invalid_credentials"
    )
    unknown = assert_problem(await api.login("nobody@example.org"), 401, "invalid_credentials")
    assert wrong["detail"] == unknown["detail"]


async def test_refresh_rotates_and_a_used_token_is_dead(api: Api) -> None:
    user = await api.user()
    first = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != user.refresh_token

    replay = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert_problem(replay, 401, "refresh_token_reused")

    # The replay revoked the whole family: the rotated token is dead too.
    after = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert_problem(after, 401)

    new_access = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await api.client.get("/api/v1/me", headers=new_access)).status_code == 200


async def test_concurrent_refreshes_with_one_token_yield_one_pair(api: Api) -> None:
    user = await api.user()
    results = await asyncio.gather(
        *(
            api.client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 401, 401, 401]


async def test_unknown_and_expired_refresh_tokens_are_rejected(api: Api) -> None:
    assert_problem(
        await api.client.post("/api/v1/auth/refresh", json={"refresh_token": "no-such-token"}),
        401,
        "invalid_token",
    )
    user = await api.user()
    clock.advance(timedelta(days=7, seconds=1))
    assert_problem(
        await api.client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}),
        401,
        "invalid_token",
    )


async def test_garbage_and_missing_bearer_tokens_are_unauthorized(api: Api) -> None:
    assert_problem(
        await api.client.get("/api/v1/me", headers={"Authorization": "Bearer garbage"}),
        401,
        "invalid_token",
    )
    response = await api.client.get("/api/v1/me")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_problem(
        await api.client.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401
    )


async def test_access_token_expires_after_fifteen_minutes(api: Api) -> None:
    user = await api.user()
    clock.advance(timedelta(minutes=14, seconds=59))
    assert (await api.client.get("/api/v1/me", headers=user.headers)).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert_problem(await api.client.get("/api/v1/me", headers=user.headers), 401, "invalid_token")


async def test_token_signed_with_another_key_is_rejected(api: Api) -> None:
    import jwt

    user = await api.user()
    forged = jwt.encode(
        {
            "sub": user.id,
            "role": "owner",
            "aud": "tradecast-api",
            "typ": "access",
            "exp": int(clock.utcnow().timestamp()) + 600,
        },
        "some-other-key-of-sufficient-length-000",
        algorithm="HS256",
    )
    response = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "invalid_token")


async def test_delivery_mode_can_be_switched(api: Api) -> None:
    user = await api.user()
    changed = await api.client.patch(
        "/api/v1/me", json={"delivery_mode": "approval"}, headers=user.headers
    )
    assert changed.status_code == 200
    assert changed.json()["delivery_mode"] == "approval"
    me = await api.client.get("/api/v1/me", headers=user.headers)
    assert me.json()["delivery_mode"] == "approval"
    assert_problem(
        await api.client.patch("/api/v1/me", json={"delivery_mode": "yolo"}, headers=user.headers),
        422,
    )
    assert_problem(
        await api.client.patch("/api/v1/me", json={"role": "owner"}, headers=user.headers), 422
    )


async def test_user_on_admin_endpoint_is_forbidden(api: Api) -> None:
    user = await api.user()
    assert_problem(
        await api.client.get("/api/v1/admin/audit", headers=user.headers), 403, "admin_required"
    )


async def test_password_is_stored_as_argon2id(api: Api) -> None:
    from sqlalchemy import select

    from tradecast.db import Database
    from tradecast.users.models import User

    user = await api.user()
    db = Database(api.settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            stored = await session.scalar(
                select(User.password_hash).where(User.email == user.email)
            )
    finally:
        await db.dispose()
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
