"""``tradecast device run``: the reference device client as a command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from tradecast.client.api import CredentialsRejected, DeviceApi
from tradecast.client.executor import PaperExecutor
from tradecast.client.journal import Journal
from tradecast.client.runner import Runner, RunnerOptions
from tradecast.kit.jsonlog import configure_logging

device_app = typer.Typer(help="The reference device client.", no_args_is_help=True)

# Exit status when the server refuses the key for good (deleted device, wrong secret).
EXIT_CREDENTIALS = 3


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise typer.BadParameter(f"not a decimal: {text!r}", param_hint=option) from exc
    if not value.is_finite():
        raise typer.BadParameter(f"not a finite decimal: {text!r}", param_hint=option)
    return value


def _prices(items: list[str]) -> dict[str, Decimal]:
    prices: dict[str, Decimal] = {}
    for item in items:
        instrument, sep, price = item.partition("=")
        if not sep or not instrument:
            raise typer.BadParameter(
                f"expected INSTRUMENT=PRICE, got {item!r}", param_hint="--price"
            )
        prices[instrument.strip().upper()] = _decimal(price, "--price")
    return prices


@device_app.command("run")
def run(
    url: Annotated[str, typer.Option(help="The server's base URL.")],
    key_id: Annotated[str, typer.Option(help="The device id (X-Key-Id).")],
    secret: Annotated[
        str,
        typer.Option(
            envvar="TRADECAST_DEVICE_SECRET",
            help="The device secret. Prefer the environment variable: a command line "
            "is visible to every user of the machine.",
            show_default=False,
        ),
    ],
    journal: Annotated[
        Path, typer.Option(help="The local journal (SQLite) of acted-on signals and reports.")
    ] = Path("tradecast-device.db"),
    price: Annotated[
        list[str] | None,
        typer.Option(help="INSTRUMENT=PRICE: the paper fill price of market orders."),
    ] = None,
    slippage_bps: Annotated[
        str, typer.Option(help="Paper fills move this many basis points against the trade.")
    ] = "0",
    latency_ms: Annotated[int, typer.Option(min=0, help="Paper execution latency.")] = 0,
    default_size: Annotated[str, typer.Option(help="Size when a signal has no volume.")] = "1",
    wait: Annotated[int, typer.Option(min=0, max=30, help="Long-poll seconds.")] = 25,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Poll for signals, ACK them, execute them on paper and report the fills."""
    configure_logging(log_level)
    # One line per request from httpx would drown the client's own events.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    executor = PaperExecutor(
        reference_prices=_prices(price or []),
        slippage_bps=_decimal(slippage_bps, "--slippage-bps"),
        latency_s=latency_ms / 1000,
        default_size=_decimal(default_size, "--default-size"),
    )
    try:
        asyncio.run(_run(url, key_id, secret, journal, executor, RunnerOptions(wait_s=wait)))
    except CredentialsRejected as exc:
        typer.echo(f"the server refused this device's credentials: {exc}", err=True)
        raise typer.Exit(EXIT_CREDENTIALS) from exc


async def _run(
    url: str,
    key_id: str,
    secret: str,
    journal_path: Path,
    executor: PaperExecutor,
    options: RunnerOptions,
) -> None:
    api = DeviceApi(url, key_id, secret)
    journal = Journal(journal_path)
    task = asyncio.create_task(Runner(api, journal, executor, options).run())
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGINT, signal.SIGTERM):
        # A clean stop between two journal writes; the journal holds whatever is unsent.
        loop.add_signal_handler(stop, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await api.aclose()
        journal.close()
