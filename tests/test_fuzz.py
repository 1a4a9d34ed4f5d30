"""Property-based fuzzing of every operation in the app's own OpenAPI document.

Schemathesis generates valid and invalid requests for each operation (bodies,
query strings, path ids, headers) and sends them to a real ``tradecast serve``
process, signed in as a user and as an admin; device-signed endpoints carry a
correct HMAC signature computed for each generated request, so the fuzzer gets
past authentication into validation and business rules. Every response must be
a non-5xx with a declared status code, the declared content type and a body
that matches the declared schema.

Bounded and reproducible: ``MAX_EXAMPLES`` per operation and principal,
``derandomize=True`` (the same cases on every run).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import BACKEND, PG_ADMIN_DSN, WORKER, _pg_url, _recreate_pg_database
from tests.conftest import make_settings as make_test_settings
from tests.helpers import Api, LoggedIn
from tests.servers import Server, server_env, start_server
from tradecast import migrate
from tradecast.config import Settings
from tradecast.kit import signing
from tradecast.main import create_app

# 51 operations x 2 principals x 20 examples: about two minutes per backend on two cores.
MAX_EXAMPLES = int(os.environ.get("TRADECAST_FUZZ_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations authenticated by a device signature rather than a bearer token.
SIGNED_PREFIX = "/api/v1/exec/"
SIGNED_OPERATIONS = {"/api/v1/exec/poll", "/api/v1/exec/ack", "/api/v1/exec/fill"}
SIGNED_OPERATIONS |= {"/api/v1/exec/error", "/api/v1/exec/whoami"}


def _document() -> dict[str, Any]:
    # Building the app touches no database: the lifespan is what connects.
    offline = Settings(env="test", database_url="sqlite+aiosqlite:///:memory:", secret_key="o" * 40)
    return create_app(offline).openapi()


schema = schemathesis.openapi.from_dict(_document())


@dataclass
class Principal:
    """Someone signed in over HTTP, with a device of their own to sign with."""

    login: LoggedIn
    device_id: str
    device_secret: str


@dataclass
class FuzzTarget:
    server: Server
    user: Principal
    admin: Principal


async def _principals(url: str, settings: Settings) -> tuple[Principal, Principal]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        api = Api(client, settings)
        principals = []
        for login in (await api.user(), await api.admin()):
            created = await client.post(
                "/api/v1/devices", json={"device_name": "fuzz"}, headers=login.headers
            )
            assert created.status_code == 201, created.text
            body = created.json()
            principals.append(Principal(login, body["id"], body["secret"]))
    return principals[0], principals[1]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    tmp = tmp_path_factory.mktemp("fuzz")
    name = f"tradecast_fuzz_{WORKER}"
    if BACKEND == "postgresql":
        asyncio.run(_recreate_pg_database(name))
        url = _pg_url(PG_ADMIN_DSN, name)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    migrate.upgrade(url)
    # Rate limits off: a 429 after the tenth login attempt would hide what the fuzzer finds.
    env = server_env(url, tmp / "data", TRADECAST_RATE_LIMITS_ENABLED="false")
    server = start_server(env, tmp / "server.log")
    try:
        user, admin = asyncio.run(_principals(server.url, make_test_settings(url, tmp)))
        yield FuzzTarget(server, user, admin)
    finally:
        server.stop()
        if BACKEND == "postgresql":
            asyncio.run(_recreate_pg_database(name, create=False))


def _send(case: Any, target: FuzzTarget, principal: Principal) -> None:
    base_url = target.server.url
    query = case.query if isinstance(case.query, dict) else None
    wait = query.get("wait") if query is not None else None
    if isinstance(wait, int) and not isinstance(wait, bool) and 1 < wait <= 30:
        # A valid long poll would hold the example for up to 30 s; one second
        # exercises the same code. Out-of-range values are sent as generated.
        assert query is not None
        query["wait"] = 1
    headers = dict(principal.login.headers)
    if case.path in SIGNED_OPERATIONS:
        headers = {}
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
    request = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        data=kwargs.get("data"),
        json=kwargs.get("json"),
        cookies=kwargs.get("cookies"),
    ).prepare()
    if case.path in SIGNED_OPERATIONS:
        # Signed over exactly the bytes and query that go on the wire.
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        parts = urlsplit(request.url or "")
        request.headers.update(
            signing.sign_request(
                key_id=principal.device_id,
                secret=principal.device_secret,
                method=request.method or "GET",
                path=parts.path,
                query=parse_qsl(parts.query, keep_blank_values=True),
                body=body,
            )
        )
    with requests.Session() as session:
        response = session.send(request, timeout=60, allow_redirects=False)
    case.validate_response(
        response, checks=CHECKS, headers=dict(request.headers), transport_kwargs=kwargs
    )


_FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@schema.parametrize()
@_FUZZ_SETTINGS
def test_api_as_a_user(case: Any, target: FuzzTarget) -> None:
    _send(case, target, target.user)


@schema.parametrize()
@_FUZZ_SETTINGS
def test_api_as_an_admin(case: Any, target: FuzzTarget) -> None:
    _send(case, target, target.admin)


def test_every_operation_is_fuzzed() -> None:
    """The document lists every route, so nothing escapes the fuzzer."""
    operations = {
        (method.upper(), path) for path, item in _document()["paths"].items() for method in item
    }
    assert len(operations) >= 50
    assert {path for _, path in operations if path.startswith(SIGNED_PREFIX)} >= SIGNED_OPERATIONS
