"""Per-request facts that logs, audit events and errors need without threading them through."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class RequestContext:
    request_id: str
    client_ip: str | None = None
    user_id: str | None = None
    device_id: str | None = None
    producer_id: str | None = None
    route: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


_current: ContextVar[RequestContext | None] = ContextVar("tradecast_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def bind(context: RequestContext) -> object:
    return _current.set(context)


def unbind(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context else None
