from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response, status

from tradecast.config import AppSettings
from tradecast.db import DbSession
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.ratelimit import AppRateLimiter
from tradecast.telegram import service
from tradecast.telegram.dependencies import RunningBot, verified_sender
from tradecast.telegram.errors import TelegramBotDisabled, UpdateTimedOut, WebhookSecretMismatch
from tradecast.telegram.schemas import LinkCodeOut
from tradecast.users.dependencies import CurrentUser

router = APIRouter()

_WEBHOOK_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`{}`, or the reply as a Bot API call for Telegram to make, "
        'e.g. `{"method": "sendMessage", "chat_id": 42, "text": "..."}`.',
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_UPDATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "A Telegram Update (https://core.telegram.org/bots/api#update)",
                }
            }
        },
    }
}


@router.post(
    "/telegram/webhook",
    tags=["telegram"],
    responses={
        **_WEBHOOK_REPLY,
        **responses_for(
            WebhookSecretMismatch, UnprocessableEntity, TelegramBotDisabled, UpdateTimedOut
        ),
    },
    dependencies=[Depends(verified_sender)],
    openapi_extra=_UPDATE_BODY,
)
async def webhook(
    request: Request,
    telegram: RunningBot,
    session: DbSession,
    settings: AppSettings,
    limiter: AppRateLimiter,
) -> Response:
    """Telegram delivers bot updates here (registered by ``tradecast telegram set-webhook``),
    with the ``X-Telegram-Bot-Api-Secret-Token`` header set to ``TELEGRAM_WEBHOOK_SECRET``.

    Each update is one unit of work, committed before the answer leaves; a command's
    reply travels back in the answer, as a Bot API call that Telegram makes for us."""
    reply = await telegram.answer(
        await request.body(), session=session, settings=settings, limiter=limiter
    )
    return Response(orjson.dumps(reply), media_type="application/json")


def _no_store(response: Response) -> None:
    # The body holds a one-time secret: no browser, proxy or client cache may keep a copy.
    response.headers["Cache-Control"] = "no-store"


@router.post(
    "/api/v1/me/telegram-link",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    response_model=LinkCodeOut,
    responses=responses_for(Unauthorized),
)
async def create_link_code(
    user: CurrentUser, session: DbSession, response: Response
) -> LinkCodeOut:
    """A one-time code that links a Telegram chat to this account: send ``/link CODE``
    to the bot within 10 minutes. A new code replaces the previous unused one."""
    issued = await service.issue_link_code(session, user)
    _no_store(response)
    return LinkCodeOut(code=issued.code, expires_at=issued.expires_at)
