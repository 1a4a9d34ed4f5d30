"""A Bot API server on loopback: a real HTTP server, in a thread of its own, that
records every call, answers like Telegram, and fails when told to."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Call:
    token: str
    method: str
    params: dict[str, str]
    status: int


@dataclass(frozen=True)
class Failure:
    status: int
    description: str
    retry_after: int | None = None


SERVER_ERROR = Failure(500, "Internal Server Error")
BLOCKED = Failure(403, "Forbidden: bot was blocked by the user")


def flood(retry_after: int) -> Failure:
    return Failure(429, f"Too Many Requests: retry after {retry_after}", retry_after)


class FakeBotApi:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._failures: dict[str, deque[Failure]] = {}
        self._blocked: set[int] = set()
        self._lock = threading.Lock()
        self._message_ids = itertools.count(1000)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-bot-api", daemon=True)
        self.url = ""

    # --- control ---------------------------------------------------------------

    def start(self) -> FakeBotApi:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Bot API did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def fail_next(self, method: str, failure: Failure, times: int = 1) -> None:
        with self._lock:
            self._failures.setdefault(method, deque()).extend([failure] * times)

    def block(self, chat_id: int) -> None:
        """From now on the chat answers like one whose user blocked the bot."""
        with self._lock:
            self._blocked.add(chat_id)

    # --- what happened -----------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def attempts(self, chat_id: int) -> list[Call]:
        return [c for c in self.calls_of("sendMessage") if c.params.get("chat_id") == str(chat_id)]

    def delivered(self, chat_id: int) -> list[str]:
        """Texts of the sendMessage calls to ``chat_id`` that succeeded."""
        return [call.params["text"] for call in self.attempts(chat_id) if call.status == 200]

    # --- the server --------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        params = {key: str(value) for key, value in (await request.post()).items()}
        failure = self._failure_for(method, params)
        with self._lock:
            self.calls.append(Call(token, method, params, failure.status if failure else 200))
        if failure is not None:
            body: dict[str, Any] = {
                "ok": False,
                "error_code": failure.status,
                "description": failure.description,
            }
            if failure.retry_after is not None:
                body["parameters"] = {"retry_after": failure.retry_after}
            return web.json_response(body, status=failure.status)
        return web.json_response({"ok": True, "result": self._result(method, params)})

    def _failure_for(self, method: str, params: dict[str, str]) -> Failure | None:
        with self._lock:
            queued = self._failures.get(method)
            if queued:
                return queued.popleft()
            if method == "sendMessage" and int(params.get("chat_id", 0)) in self._blocked:
                return BLOCKED
        return None

    def _result(self, method: str, params: dict[str, str]) -> Any:
        if method == "sendMessage":
            chat_id = int(params["chat_id"])
            return {
                "message_id": next(self._message_ids),
                "date": 1_800_000_000,
                "chat": {"id": chat_id, "type": "private"},
                "text": params.get("text", ""),
            }
        if method == "getMe":
            return {"id": 123456, "is_bot": True, "first_name": "tradecast", "username": "tc_bot"}
        return True
