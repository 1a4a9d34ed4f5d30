from __future__ import annotations

import stat
from decimal import Decimal
from ipaddress import ip_network
from pathlib import Path

import pytest
from pydantic import ValidationError

from tradecast.config import ConfigurationError, Settings

STRONG = "x" * 48


@pytest.fixture(autouse=True)
def _no_local_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings read an optional .env from the working directory; keep a developer's out.
    monkeypatch.chdir(tmp_path)


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.resolved_database_url == (
        f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'tradecast.db').resolve()}"
    )
    assert settings.hmac_skew_s == 300
    assert settings.nonce_ttl_s == 600
    assert settings.max_slippage_pct == Decimal("0.5")
    assert settings.affiliate_min_payout == Decimal("50.00")
    assert settings.affiliate_tiers[1] == (Decimal(10000), Decimal("0.01"))
    assert settings.currency == "USD"
    assert settings.contract_size("EURUSD") == 1
    assert settings.rate_limits_enabled is True


def test_development_secret_key_is_generated_once_with_owner_only_mode(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    key = settings.signing_key()
    path = tmp_path / "d" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 48
    assert Settings(data_dir=tmp_path / "d").signing_key() == key


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADECAST_HMAC_SKEW_S", "120")
    monkeypatch.setenv("TRADECAST_CONTRACT_SIZES", "eurusd:100000, XAUUSD:100")
    monkeypatch.setenv("TRADECAST_AFFILIATE_TIERS", "5000:0.02,0:0.01")
    monkeypatch.setenv("TRADECAST_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    monkeypatch.setenv("TRADECAST_RATE_LIMITS_ENABLED", "false")
    settings = Settings()
    assert settings.hmac_skew_s == 120
    assert settings.contract_size("EURUSD") == Decimal(100000)
    assert settings.contract_size("xauusd") == Decimal(100)
    assert settings.contract_size("BTCUSD") == Decimal(1)
    assert settings.affiliate_tiers == (
        (Decimal(0), Decimal("0.01")),
        (Decimal(5000), Decimal("0.02")),
    )
    assert settings.trusted_proxies == (ip_network("10.0.0.0/8"), ip_network("192.0.2.1/32"))
    assert settings.rate_limits_enabled is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRADECAST_AFFILIATE_TIERS", "100:0.01"),
        ("TRADECAST_AFFILIATE_TIERS", "0=0.01"),
        ("TRADECAST_CONTRACT_SIZES", "EURUSD"),
        ("TRADECAST_HMAC_SKEW_S", "0"),
        ("TRADECAST_CURRENCY", "dollars"),
        ("TRADECAST_TRUSTED_PROXIES", "not-an-address"),
    ],
)
def test_invalid_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"database_url": "postgresql+asyncpg://db/t"}, "SECRET_KEY"),
        ({"database_url": "postgresql+asyncpg://db/t", "secret_key": "short"}, "SECRET_KEY"),
        ({"database_url": "postgresql+asyncpg://db/t", "secret_key": "changeme"}, "SECRET_KEY"),
        ({"secret_key": STRONG}, "DATABASE_URL"),
        ({"secret_key": STRONG, "database_url": "sqlite+aiosqlite:///x.db"}, "DATABASE_URL"),
    ],
)
def test_production_refuses_unsafe_configuration(overrides: dict[str, str], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        Settings(env="production", **overrides)  # type: ignore[arg-type]


def test_production_accepts_a_strong_key_and_postgresql() -> None:
    settings = Settings(
        env="production", secret_key=STRONG, database_url="postgresql+asyncpg://db/t"
    )  # type: ignore[arg-type]
    assert settings.signing_key() == STRONG
    assert not settings.is_sqlite
