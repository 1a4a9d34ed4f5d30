"""A signed HTTP client for the device endpoints (SPEC §2, §6).

Signing comes from ``tradecast.kit.signing``, the one definition the server
verifies with. Answers are sorted into what the caller can act on: a 2xx
response, ``RetryLater`` (network trouble, 5xx, 429: back off and try again),
``Rejected`` (the server will answer the same again: do not retry unchanged)
and ``CredentialsRejected`` (stop: the key is gone or the secret is wrong).
Two 401s are handled here, once each per call: ``stale_timestamp`` resyncs
the clock from ``X-Server-Time``, ``nonce_reused`` signs again with a new nonce.

Nothing here logs a secret, a signature or a signed header.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tradecast.kit import signing

logger = logging.getLogger("tradecast.client")

POLL_PATH = "/api/v1/exec/poll"
REPORT_PATHS = {
    "ack": "/api/v1/exec/ack",
    "fill": "/api/v1/exec/fill",
    "error": "/api/v1/exec/error",
}
SERVER_TIME_HEADER = "X-Server-Time"
# A long poll is held up to `wait` seconds; the read timeout must outlast it.
READ_TIMEOUT_MARGIN_S = 10.0


class ApiError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class RetryLater(ApiError):
    """Worth retrying: no answer, a 5xx or a 429. ``retry_after`` is the server's hint."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Rejected(ApiError):
    """The server refused the request as it is (400, 404, 409, 422, ...)."""


class CredentialsRejected(ApiError):
    """``key_inactive``, ``unknown_key``, ``bad_signature`` or ``missing_auth_header``:
    nothing this client can fix by retrying."""


@dataclass(frozen=True)
class PollAnswer:
    signals: list[dict[str, Any]]
    server_time: datetime
    poll_interval_s: int


def backoff_delay(attempt: int, *, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Full jitter: uniform in [0, min(cap, base × 2^attempt)], so a fleet of terminals that
    lost the server together does not come back together."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))  # noqa: S311 - jitter, not a secret


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    return float(raw) if raw.isdigit() else None


def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


class DeviceApi:
    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.key_id = key_id
        self._secret = secret
        self.clock_offset_s = 0.0  # server clock − local clock
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    def __repr__(self) -> str:  # never the secret
        return f"DeviceApi(key_id={self.key_id!r}, base_url={str(self.http.base_url)!r})"

    async def aclose(self) -> None:
        await self.http.aclose()

    def server_now(self) -> float:
        return time.time() + self.clock_offset_s

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """One signed request, answered 2xx, or one of this module's errors."""
        query = signing.canonical_query(params)
        # The canonical query is sent verbatim, so the server decodes what was signed.
        url = f"{path}?{query}" if query else path
        for _ in range(3):
            headers = signing.sign_request(
                key_id=self.key_id,
                secret=self._secret,
                method=method,
                path=path,
                query=params,
                body=body,
                timestamp=int(self.server_now()),
            )
            if body:
                headers["Content-Type"] = "application/json"
            try:
                response = await self.http.request(
                    method,
                    url,
                    content=body,
                    headers=headers,
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                raise RetryLater(f"{method} {path}: {type(exc).__name__}") from exc
            if response.status_code < 300:
                return response
            if not self._recoverable_401(response):
                self._raise_for(method, path, response)
        raise RetryLater(f"{method} {path}: refused three times in a row")

    def _recoverable_401(self, response: httpx.Response) -> bool:
        if response.status_code != 401:
            return False
        code = _problem_code(response)
        if code == "stale_timestamp":
            server_time = response.headers.get(SERVER_TIME_HEADER, "")
            if server_time.isdigit():
                self.clock_offset_s = int(server_time) - time.time()
                logger.warning(
                    "clock resynced from the server; fix this machine's clock (NTP)",
                    extra={"offset_s": round(self.clock_offset_s, 1)},
                )
                return True
            return False
        # Every attempt signs with a fresh nonce, so a reused one is simply signed again.
        return code == "nonce_reused"

    @staticmethod
    def _raise_for(method: str, path: str, response: httpx.Response) -> None:
        status, code = response.status_code, _problem_code(response)
        message = (
            f"{method} {path}: {status} {code or ''} "
            f"(request id {response.headers.get('X-Request-Id', '?')})"
        )
        if status == 429 or status >= 500:
            raise RetryLater(message, status=status, retry_after=_retry_after(response))
        if status == 401:
            raise CredentialsRejected(message, status=status, code=code)
        raise Rejected(message, status=status, code=code)

    async def poll(self, *, wait_s: int = 25, limit: int = 50) -> PollAnswer:
        response = await self.request(
            "GET",
            POLL_PATH,
            params=[("limit", str(limit)), ("wait", str(wait_s))],
            timeout_s=wait_s + READ_TIMEOUT_MARGIN_S,
        )
        body = response.json()
        server_time = datetime.fromisoformat(body["server_time"].replace("Z", "+00:00"))
        # Keep the clock in step while things work, not only after a refusal.
        self.clock_offset_s = server_time.timestamp() - time.time()
        return PollAnswer(body["signals"], server_time, int(body["poll_interval_s"]))

    async def report(self, kind: str, body: bytes) -> httpx.Response:
        """Send an ACK, fill or error report: 201 recorded, 200 a replay of a recorded one."""
        return await self.request("POST", REPORT_PATHS[kind], body=body)

    async def whoami(self) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.request("GET", "/api/v1/exec/whoami")).json()
        return answer
