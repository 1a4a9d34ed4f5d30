"""Request ids, the access log, Prometheus metrics and the last-resort 500 problem.

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: it must not buffer
long polls, and it must see the exceptions nobody else handled so that even a
crash answers with a problem that carries the request id.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradecast.errors import AppError, problem_response
from tradecast.kit import request_context
from tradecast.kit.client_ip import resolve_client_ip
from tradecast.kit.request_context import RequestContext

logger = logging.getLogger("tradecast.access")
error_logger = logging.getLogger("tradecast.errors")

REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Metrics:
    """One registry per app, so that several apps in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tradecast_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tradecast_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tradecast_http_requests_in_flight",
            "Requests being served, long polls included.",
            registry=self.registry,
        )
        self.fill_batches = Counter(
            "tradecast_fill_batches_total",
            "Batches of fill reports (PostgreSQL) by outcome: committed, or rolled back "
            "(their fills then recorded one at a time).",
            ["outcome"],
            registry=self.registry,
        )
        self.batched_fills = Counter(
            "tradecast_batched_fills_total",
            "Fill reports recorded in a committed batch.",
            registry=self.registry,
        )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, trusted_proxies: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.trusted_proxies = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"x-request-id")
        # Our own: 32 random hex digits, as ``uuid4().hex`` wrote them, in a third of the time.
        request_id = (
            offered if offered and _SANE_REQUEST_ID.match(offered) else secrets.token_hex(16)
        )
        client = scope.get("client")
        peer = client[0] if client else None
        context = RequestContext(
            request_id=request_id,
            client_ip=resolve_client_ip(
                peer, _header(scope, b"x-forwarded-for"), self.trusted_proxies
            ),
        )
        token = request_context.bind(context)
        status = 500
        started = False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error_logger.exception("unhandled error", exc_info=exc)
            if started:
                raise
            response = problem_response(
                500,
                AppError.code,
                AppError.title,
                "An unexpected error occurred; quote the request id.",
            )
            await response(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - began
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            logger.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client_ip": context.client_ip,
                },
            )
            request_context.unbind(token)
