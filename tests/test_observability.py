from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import _logs, metrics, trace

from tests.helpers import Api
from tradecast.kit.jsonlog import JsonFormatter


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The JSON lines tradecast writes, captured with its own formatter."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)


async def test_logs_never_contain_passwords_or_tokens(api: Api, log_lines: io.StringIO) -> None:
    password = "very-secret-passphrase-42"
    user = await api.user(password=password)
    refreshed = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    await api.login(user.email, "another-wrong-passphrase")
    text = log_lines.getvalue()
    assert text, "nothing was logged"
    for secret in (
        password,
        "another-wrong-passphrase",
        user.access_token,
        user.refresh_token,
        refreshed.json()["refresh_token"],
        refreshed.json()["access_token"],
    ):
        assert secret not in text


async def test_each_request_logs_one_json_line_with_its_context(
    api: Api, log_lines: io.StringIO
) -> None:
    user = await api.user()
    log_lines.truncate(0)
    log_lines.seek(0)
    response = await api.client.get("/api/v1/me", headers=user.headers)
    entries = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (access,) = [e for e in entries if e["logger"] == "tradecast.access"]
    assert access["request_id"] == response.headers["x-request-id"]
    assert access["user_id"] == user.id
    assert access["method"] == "GET"
    assert access["route"] == "/api/v1/me"
    assert access["status"] == 200
    assert access["duration_ms"] >= 0


def test_secret_looking_fields_are_redacted() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "event", (), None)
    record.__dict__.update({"password": "hunter2", "device_secret": "s3", "amount": "5"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["password"] == "[redacted]"
    assert entry["device_secret"] == "[redacted]"
    assert entry["amount"] == "5"


@pytest.mark.parametrize(
    "created",
    [
        1_795_000_000.0,  # a whole second
        1_795_000_000.0004994,  # rounds down to .000
        1_795_000_000.9995,  # .999500 → .999
        1_795_000_000.9999996,  # rounds up into the next second
        1_795_000_059.9999999,  # ... and the next minute
        374_482_817.86799955,  # the microsecond rounds up to .868
    ],
)
def test_line_timestamps_are_utc_to_the_millisecond(created: float) -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "event", (), None)
    record.created = created
    entry = json.loads(JsonFormatter().format(record))
    assert entry["ts"] == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


async def test_requests_do_not_consult_opentelemetry(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Metrics are Prometheus's (``GET /metrics``) and logs JSON lines: FastAPI's
    # OpenTelemetry instrumentation is off, so a request never asks for a provider.
    asked: list[str] = []
    for module, name in (
        (trace, "get_tracer_provider"),
        (metrics, "get_meter_provider"),
        (_logs, "get_logger_provider"),
    ):
        original = getattr(module, name)

        def counting(original: Any = original, name: str = name) -> Any:
            asked.append(name)
            return original()

        monkeypatch.setattr(module, name, counting)
    user = await api.user()
    response = await api.client.get("/api/v1/me", headers=user.headers)
    assert response.status_code == 200
    assert "x-request-id" in response.headers
    assert asked == []
