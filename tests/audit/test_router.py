from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.helpers import Api, assert_problem
from tradecast.db import Database
from tradecast.kit import clock


async def test_registration_and_failed_login_are_audited(api: Api) -> None:
    admin = await api.admin()
    user = await api.user()
    assert (await api.login(user.email, "not the password")).status_code == 401

    registered = await api.client.get(
        "/api/v1/admin/audit", params={"action": "user.registered"}, headers=admin.headers
    )
    assert registered.status_code == 200
    page = registered.json()
    assert page["limit"] == 50
    assert page["offset"] == 0
    targets = {item["target_id"] for item in page["items"]}
    assert user.id in targets
    assert all(item["action"] == "user.registered" for item in page["items"])

    failed = await api.client.get(
        "/api/v1/admin/audit", params={"action": "user.login_failed"}, headers=admin.headers
    )
    (event,) = failed.json()["items"]
    assert event["target_id"] == user.id
    assert event["metadata"] == {"email": user.email}
    assert event["client_ip"] == "203.0.113.7"
    assert event["request_id"]
    assert "not the password" not in failed.text


async def test_audit_filters_by_actor_and_time_and_paginates(api: Api) -> None:
    first = await api.user()
    clock.advance(timedelta(hours=1))
    cutoff = clock.utcnow()
    second = await api.user()
    admin = await api.admin()

    by_actor = await api.client.get(
        "/api/v1/admin/audit", params={"actor_id": first.id}, headers=admin.headers
    )
    assert {item["actor_id"] for item in by_actor.json()["items"]} == {first.id}

    since = await api.client.get(
        "/api/v1/admin/audit",
        params={"action": "user.registered", "since": cutoff.isoformat()},
        headers=admin.headers,
    )
    # Newest first.
    assert [item["target_id"] for item in since.json()["items"]] == [admin.id, second.id]

    paged = await api.client.get(
        "/api/v1/admin/audit",
        params={"action": "user.registered", "limit": 1, "offset": 1},
        headers=admin.headers,
    )
    body = paged.json()
    assert body["total"] == 3  # first, second and the admin
    assert len(body["items"]) == 1


async def test_audit_rejects_bad_filters(api: Api) -> None:
    admin = await api.admin()
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"actor_id": "nope"}):
        assert_problem(
            await api.client.get("/api/v1/admin/audit", params=params, headers=admin.headers), 422
        )
    naive = await api.client.get(
        "/api/v1/admin/audit", params={"since": "2026-01-01T00:00:00"}, headers=admin.headers
    )
    assert_problem(naive, 422)


async def test_audit_is_for_admins_only(api: Api) -> None:
    user = await api.user()
    assert_problem(await api.client.get("/api/v1/admin/audit"), 401)
    assert_problem(await api.client.get("/api/v1/admin/audit", headers=user.headers), 403)


async def test_audit_events_cannot_be_changed_or_deleted(api: Api) -> None:
    await api.user()
    db = Database(api.settings.resolved_database_url)
    try:
        for statement in ("UPDATE audit_events SET action = 'forged'", "DELETE FROM audit_events"):
            async with db.engine.connect() as connection:
                with pytest.raises(DBAPIError, match="append-only"):
                    await connection.execute(text(statement))
    finally:
        await db.dispose()
