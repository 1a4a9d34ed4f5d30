"""What the bot says: every reply and notification text, in plain text (no markup,
so device names and error messages need no escaping)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradecast.affiliates.models import Affiliate, Payout
from tradecast.affiliates.service.accounts import Link, Stats
from tradecast.devices.models import Device
from tradecast.kit.decimals import decimal_text
from tradecast.signals.models import Signal
from tradecast.users.models import User

HELP = """\
Commands:
/link CODE - link this chat to your tradecast account
/devices - your terminals: online or not, last seen
/signals - the latest open signals
/affiliate - join the affiliate program, or see your affiliate status
/referral_link - your referral token and links
/stats - referrals, tier and balance
/payout AMOUNT - request a payout, e.g. /payout 50.00
/help - this list

Reconciliation issues on your devices and payout updates arrive here once the chat is linked."""

HOW_TO_LINK = (
    "To link your account, create a code in tradecast (POST /api/v1/me/telegram-link, "
    "valid for 10 minutes) and send it here as /link CODE."
)
NOT_LINKED = "This chat is not linked to a tradecast account yet. " + HOW_TO_LINK
LINK_USAGE = "Send /link CODE with a code from POST /api/v1/me/telegram-link."
PAYOUT_USAGE = "Send /payout AMOUNT, for example /payout 50.00"
NOT_AFFILIATE = "This account is not an affiliate yet; send /affiliate to join."
UNKNOWN = "I don't know that one. /help lists what I can do."
SORRY = "Something went wrong on our side; please try again in a minute."

ISSUE_KINDS = {
    "missing_ack": "no acknowledgement",
    "missing_fill": "no fill",
    "execution_error": "execution error",
    "slippage": "slippage",
    "size_mismatch": "size mismatch",
}


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def welcome(account: User | None, signup_url: str) -> str:
    if account is not None:
        return f"Welcome back. This chat is linked to {account.email}.\n/help lists the commands."
    return (
        "Welcome to tradecast: trading signals to your terminals.\n"
        f"No account yet? Sign up at {signup_url}\n" + HOW_TO_LINK
    )


def linked(account: User, *, replaced: bool, repeated: bool) -> str:
    if repeated:
        return f"This chat is already linked to {account.email}."
    text = (
        f"Linked: this chat now belongs to {account.email}. Reconciliation issues on your "
        "devices and payout updates will arrive here.\n/help lists the commands."
    )
    if replaced:
        text += "\nThe account this chat was linked to before is no longer linked to it."
    return text


def devices(found: Sequence[Device], online: Mapping[uuid.UUID, bool]) -> str:
    if not found:
        return "No devices yet. Register one with POST /api/v1/devices."
    lines = ["Your devices:"]
    for device in found:
        seen = when(device.last_poll) if device.last_poll else "never"
        state = "online" if online[device.id] else "offline"
        lines.append(f"- {device.device_name}: {state}, last seen {seen}")
    return "\n".join(lines)


def signal_line(signal: Signal) -> str:
    parts = [f"{signal.instrument} {signal.side.value} {signal.order_type.value}"]
    for label, value in (
        ("entry", signal.entry_price),
        ("SL", signal.stop_loss),
        ("TP", signal.take_profit),
        ("volume", signal.volume),
    ):
        if value is not None:
            parts.append(f"{label} {decimal_text(value)}")
    parts.append(f"until {when(signal.expires_at)}")
    return "- " + ", ".join(parts)


def signals(found: Sequence[Signal], total: int) -> str:
    if not found:
        return "No open signals right now."
    header = f"Latest open signals ({len(found)} of {total}):"
    return "\n".join([header, *(signal_line(signal) for signal in found)])


def affiliate_joined(affiliate: Affiliate) -> str:
    return (
        "You are now an affiliate. Your referral token: "
        f"{affiliate.referral_token}\n/referral_link gives you the links to share, "
        "/stats your referrals and balance."
    )


def affiliate_status(affiliate: Affiliate, stats: Stats) -> str:
    return (
        f"Affiliate account: {affiliate.status.value}, since {when(affiliate.created_at)}\n"
        f"Referral token: {affiliate.referral_token}\n"
        f"Referrals: {stats.referral_count}, tier {stats.tier.number} "
        f"({decimal_text(stats.tier.rate * 100)} %)\n"
        "/stats for your balance, /referral_link for the links to share."
    )


def referral_link(link: Link) -> str:
    return (
        f"Your referral token: {link.referral_token}\n"
        f"Sign-up link: {link.url}\n"
        f"Telegram link: {link.telegram_url}"
    )


def stats(found: Stats, currency: str) -> str:
    balance = found.balance
    return "\n".join(
        [
            f"Referrals: {found.referral_count}",
            f"Tier: {found.tier.number} ({decimal_text(found.tier.rate * 100)} %)",
            f"30-day referred volume: {decimal_text(found.volume_30d)}",
            f"Earned: {money(balance.earned, currency)}",
            f"Available: {money(balance.available, currency)}",
            f"Pending payouts: {money(balance.pending, currency)}",
            f"Paid out: {money(balance.paid, currency)}",
        ]
    )


def payout_requested(payout: Payout) -> str:
    # Enough of the account to recognise it; a chat is no place for the whole number.
    last4 = re.sub(r"[^A-Za-z0-9]", "", payout.bank_account)[-4:]
    return (
        f"Payout of {money(payout.amount, payout.currency)} requested to the account ending "
        f"{last4}; it is {payout.status.value}. "
        "You will get a message here when it is paid."
    )


def issue_opened(payload: Mapping[str, Any]) -> str:
    kind = str(payload.get("kind", ""))
    text = (
        f"Reconciliation issue on device {payload.get('device_name')}: "
        f"{ISSUE_KINDS.get(kind, kind)} for {payload.get('instrument')} {payload.get('side')}."
    )
    detail = _issue_detail(kind, payload.get("detail") or {})
    return f"{text}\n{detail}" if detail else text


def _issue_detail(kind: str, detail: Mapping[str, Any]) -> str:
    if kind == "execution_error":
        return f"The terminal reported {detail.get('status_code')}: {detail.get('error_message')}"
    if kind == "slippage":
        return (
            f"Filled at {detail.get('fill_price')} against entry {detail.get('entry_price')} "
            f"({detail.get('slippage_pct')} %)."
        )
    if kind == "missing_ack":
        return f"Delivered, but not acknowledged within {detail.get('ack_timeout_s')} s."
    if kind == "missing_fill":
        return f"Acknowledged, but not filled within {detail.get('fill_timeout_s')} s."
    if kind == "size_mismatch":
        return f"Filled {detail.get('filled_size')} of a volume of {detail.get('volume')}."
    return ""


def payout_settled(payload: Mapping[str, Any]) -> str | None:
    """The message for a payout that was paid or failed; ``None`` for other changes."""
    amount = money(Decimal(str(payload["amount"])), str(payload["currency"]))
    if payload.get("status") == "paid":
        reference = payload.get("reference")
        return f"Your payout of {amount} was paid" + (
            f" (reference {reference})." if reference else "."
        )
    if payload.get("status") == "failed":
        return (
            f"Your payout of {amount} failed: {payload.get('reason')}. "
            "The amount is back in your available balance."
        )
    return None
