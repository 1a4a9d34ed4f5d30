"""The ``tradecast`` command."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from tradecast import migrate as migrations
from tradecast.client.cli import device_app
from tradecast.config import ConfigurationError, Settings, get_settings
from tradecast.telegram.cli import telegram_app
from tradecast.users.models import Role

app = typer.Typer(
    help="tradecast: trading signals to subscribers' terminals.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)
app.add_typer(device_app, name="device", help="The reference device client.")
app.add_typer(telegram_app, name="telegram", help="The Telegram bot.")


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


# After a restart every terminal reconnects within seconds; connections beyond the
# listen backlog are dropped by the kernel (the terminal sees a reset), so it is
# twice uvicorn's default (docs/DEPLOY.md).
LISTEN_BACKLOG = 4096


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes; more than 1 needs TRADECAST_REDIS_URL.")
    ] = 1,
    backlog: Annotated[
        int,
        typer.Option(
            min=1,
            help="Connections the kernel holds for accepting (capped by net.core.somaxconn).",
        ),
    ] = LISTEN_BACKLOG,
) -> None:
    """Migrate the database to head, then serve the API."""
    import uvicorn

    settings = _settings()
    if workers > 1 and not settings.redis_url:
        # Each process would wake only its own long polls (a signal published through
        # one reaches devices held by another up to 30 s late) and count rate limits
        # on its own (N times the budget). Refused rather than silently wrong.
        err_console.print(
            "[red]--workers > 1 needs TRADECAST_REDIS_URL:[/red] without Redis each process "
            "keeps its own long-poll wake-ups and rate-limit counters"
        )
        raise typer.Exit(2)
    migrations.upgrade(settings.resolved_database_url)
    uvicorn.run(
        "tradecast.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        backlog=backlog,
        log_config=None,
        proxy_headers=False,
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the database schema (to head unless told otherwise)."""
    settings = _settings()
    migrations.upgrade(settings.resolved_database_url, revision)
    console.print(f"database at {revision}")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email.")],
    password: Annotated[str, typer.Option(help="8–128 characters.", prompt=True, hide_input=True)],
    owner: Annotated[bool, typer.Option(help="Create an owner instead of an admin.")] = False,
) -> None:
    """Create an administrator account (migrates first)."""
    from pydantic import ValidationError

    from tradecast.users.schemas import RegisterIn

    settings = _settings()
    try:
        RegisterIn(email=email, password=password)
    except ValidationError as exc:
        for error in exc.errors():
            err_console.print(f"[red]{'.'.join(map(str, error['loc']))}: {error['msg']}[/red]")
        raise typer.Exit(2) from exc
    migrations.upgrade(settings.resolved_database_url)
    role = Role.OWNER if owner else Role.ADMIN
    user_id = asyncio.run(_create_user(settings, email, password, role))
    console.print(f"{role.value} {email.lower()} created: {user_id}")


async def _create_user(settings: Settings, email: str, password: str, role: Role) -> str:
    from tradecast.db import Database
    from tradecast.errors import AppError
    from tradecast.users import service

    db = Database(settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            try:
                user = await service.register(session, settings, email, password, role=role)
            except AppError as exc:
                err_console.print(f"[red]{exc.detail}[/red]")
                raise typer.Exit(1) from exc
            await session.commit()
            return str(user.id)
    finally:
        await db.dispose()


@app.command("create-producer")
def create_producer(
    name: Annotated[str, typer.Option(help="Unique; letters, digits, space, '.', '_', '-'.")],
) -> None:
    """Register a strategy engine that publishes signals (migrates first). Prints its id
    (the X-Key-Id it signs with) and its HMAC secret, once."""
    from pydantic import ValidationError

    from tradecast.producers.schemas import ProducerCreate

    settings = _settings()
    try:
        ProducerCreate(name=name)
    except ValidationError as exc:
        for error in exc.errors():
            err_console.print(f"[red]{'.'.join(map(str, error['loc']))}: {error['msg']}[/red]")
        raise typer.Exit(2) from exc
    migrations.upgrade(settings.resolved_database_url)
    producer_id, secret = asyncio.run(_create_producer(settings, name))
    console.print(f"producer {name} created")
    # Plain echo, not rich: the two values must come out unwrapped and unstyled.
    typer.echo(f"id: {producer_id}")
    typer.echo(f"secret: {secret}")
    err_console.print("Store the secret now: it is not shown again.")


async def _create_producer(settings: Settings, name: str) -> tuple[str, str]:
    from tradecast.db import Database
    from tradecast.errors import AppError
    from tradecast.producers import service

    box = settings.secretbox()
    db = Database(settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session:
            try:
                issued = await service.create_producer(session, box, name)
            except AppError as exc:
                err_console.print(f"[red]{exc.detail}[/red]")
                raise typer.Exit(1) from exc
            await session.commit()
            return str(issued.producer.id), issued.secret
    finally:
        await db.dispose()


@app.command("reseal-secrets")
def reseal_secrets() -> None:
    """Re-seal device and producer secrets under the current SECRET_KEY (after a rotation;
    the old key must still be listed in PREVIOUS_SECRET_KEYS)."""
    settings = _settings()
    migrations.upgrade(settings.resolved_database_url)
    changed = asyncio.run(_reseal(settings))
    console.print(f"{changed} secret(s) re-sealed")


async def _reseal(settings: Settings) -> int:
    from tradecast.db import Database
    from tradecast.kit.secretbox import SecretBoxError
    from tradecast.signed.rotation import reseal_all

    db = Database(settings.resolved_database_url)
    try:
        async with db.sessionmaker() as session, session.begin():
            try:
                return await reseal_all(session, settings.secretbox())
            except SecretBoxError as exc:
                err_console.print(
                    f"[red]{exc}: add the key that sealed it to PREVIOUS_SECRET_KEYS[/red]"
                )
                raise typer.Exit(1) from exc
    finally:
        await db.dispose()


@app.command()
def demo(
    pace: Annotated[float, typer.Option(help="Seconds between published signals.")] = 3.0,
) -> None:
    """Start a server on a throw-away SQLite database with a producer, an affiliate and
    three simulated terminals, and show the whole flow live: signal → poll → ACK →
    fill → reconciliation → commission."""
    from tradecast.demo import main as run_demo

    if not run_demo(console, pace_s=pace):
        raise typer.Exit(1)
