"""Settings: one object, read once from ``TRADECAST_*`` variables and an optional ``.env``."""

from __future__ import annotations

import os
import secrets
from decimal import Decimal
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Request
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tradecast.kit.secretbox import SecretBox

# A key shorter than this is brute-forceable offline from any JWT it signed.
MIN_SECRET_KEY_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "dev", "development", "test"})
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


class ConfigurationError(RuntimeError):
    """The configuration cannot run safely; the message says which setting and why."""


def _parse_pairs(raw: str, name: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(
                f"{name}: expected 'key:value' items separated by commas, got {item!r}"
            )
        pairs.append((key.strip(), value.strip()))
    return pairs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRADECAST_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    # Connections each server process keeps to PostgreSQL (a fixed pool, db.py).
    db_pool_size: int = Field(default=20, gt=0)
    # And a second fixed pool, asyncpg's own, for the device paths (poll, key lookup).
    db_device_pool_size: int = Field(default=10, gt=0)
    redis_url: str | None = None
    # Namespaces every Redis key and the wake-up channel (pub/sub ignores database
    # numbers), so several deployments or test runs can share one Redis.
    redis_prefix: str = Field(default="tradecast", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # A Redis that does not answer within this many seconds counts as down.
    redis_timeout_s: float = Field(default=1.0, gt=0)
    secret_key: SecretStr | None = None
    # Keys that sealed device and producer secrets before the last SECRET_KEY rotation.
    previous_secret_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    log_level: str = "INFO"

    public_base_url: str = "http://127.0.0.1:8000"
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_bot_username: str = "tradecast_bot"
    telegram_api_base: str = "https://api.telegram.org"
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()

    # argon2id cost; the defaults are OWASP's recommended minimum (19 MiB, 2 passes).
    password_hash_time_cost: int = Field(default=2, ge=1)
    password_hash_memory_kib: int = Field(default=19456, ge=8)
    password_hash_parallelism: int = Field(default=1, ge=1)
    access_token_ttl_s: int = Field(default=15 * 60, gt=0)
    refresh_token_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)

    hmac_skew_s: int = Field(default=300, gt=0)
    nonce_ttl_s: int = Field(default=600, gt=0)
    # Opened device keys are cached per process at most this long (0: no cache);
    # rotation and deletion invalidate them at once (signed/keycache.py).
    device_key_cache_ttl_s: float = Field(default=60, ge=0)
    device_online_s: int = Field(default=300, gt=0)
    poll_interval_s: int = Field(default=5, gt=0)
    max_devices_per_user: int = Field(default=10, gt=0)
    signal_ttl_s: int = Field(default=3600, gt=0)
    reconcile_interval_s: float = Field(default=30, gt=0)
    ack_timeout_s: int = Field(default=60, gt=0)
    fill_timeout_s: int = Field(default=300, gt=0)
    max_slippage_pct: Decimal = Field(default=Decimal("0.5"), ge=0)
    affiliate_min_payout: Decimal = Field(default=Decimal("50.00"), gt=0)
    affiliate_tiers: Annotated[tuple[tuple[Decimal, Decimal], ...], NoDecode] = (
        (Decimal("0"), Decimal("0.005")),
        (Decimal("10000"), Decimal("0.01")),
        (Decimal("100000"), Decimal("0.015")),
        (Decimal("1000000"), Decimal("0.02")),
    )
    self_referral_window_s: int = Field(default=7200, ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    contract_sizes: Annotated[dict[str, Decimal], NoDecode] = Field(default_factory=dict)
    # Request bodies above this answer 413 before they are read whole (boundaries.py).
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    rate_limits_enabled: bool = True
    background_jobs_enabled: bool = True

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(
                ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
            )
        return value

    @field_validator("previous_secret_keys", mode="before")
    @classmethod
    def _split_previous_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("affiliate_tiers", mode="before")
    @classmethod
    def _parse_tiers(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        tiers = sorted((Decimal(k), Decimal(v)) for k, v in _parse_pairs(value, "AFFILIATE_TIERS"))
        if not tiers or tiers[0][0] != 0:
            raise ValueError("AFFILIATE_TIERS: the first tier must start at volume 0")
        return tuple(tiers)

    @field_validator("contract_sizes", mode="before")
    @classmethod
    def _parse_contract_sizes(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return {k.upper(): Decimal(v) for k, v in _parse_pairs(value, "CONTRACT_SIZES")}

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env != "production":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in PLACEHOLDER_SECRETS:
            raise ConfigurationError(
                "TRADECAST_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY_LENGTH} characters in production"
            )
        if not self.database_url or self.database_url.startswith("sqlite"):
            raise ConfigurationError(
                "TRADECAST_DATABASE_URL must point at PostgreSQL in production; "
                "SQLite is for development only"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tradecast.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The server's secret key; in development one is generated once and kept on disk."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _development_secret_key(self.data_dir)

    def secretbox(self) -> SecretBox:
        """The box that seals device and producer secrets, opening old seals too."""
        return SecretBox(
            self.signing_key(), tuple(key.get_secret_value() for key in self.previous_secret_keys)
        )

    def contract_size(self, instrument: str) -> Decimal:
        return self.contract_sizes.get(instrument.upper(), Decimal(1))


def _development_secret_key(data_dir: Path) -> str:
    path = data_dir / SECRET_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]
