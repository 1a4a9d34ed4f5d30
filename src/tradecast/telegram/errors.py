from __future__ import annotations

from typing import ClassVar

from tradecast.errors import AppError, Conflict, NotFound, ServiceUnavailable, Unauthorized


class WebhookSecretMismatch(Unauthorized):
    code = "bad_webhook_secret"
    title = "Webhook secret token missing or wrong"
    challenge: ClassVar[str] = 'X-Telegram-Bot-Api-Secret-Token realm="telegram-webhook"'


class TelegramBotDisabled(ServiceUnavailable):
    code = "telegram_bot_disabled"
    title = "The Telegram bot is not configured"


class UpdateTimedOut(ServiceUnavailable):
    code = "telegram_update_timeout"
    title = "The update took too long; Telegram will deliver it again"


# The errors below are answered in the chat, as the reply to a command; they are
# AppErrors so that the bot and the API speak of one condition with one sentence.


class LinkCodeUnknown(NotFound):
    code = "link_code_unknown"
    title = "Unknown link code"


class LinkCodeUsed(Conflict):
    code = "link_code_used"
    title = "Link code already used"


class LinkCodeExpired(AppError):
    status = 410
    code = "link_code_expired"
    title = "Link code expired"


class ChatLinkRaced(Conflict):
    code = "telegram_link_raced"
    title = "Another link of this chat or account happened at the same moment"


class NoPayoutAccount(Conflict):
    code = "no_payout_account"
    title = "No bank account on file for payouts through the bot"
