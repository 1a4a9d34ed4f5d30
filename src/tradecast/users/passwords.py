"""argon2id password hashes, computed off the event loop (each costs tens of milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tradecast.config import Settings


@dataclass(frozen=True)
class Verdict:
    valid: bool
    needs_rehash: bool = False


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> tuple[PasswordHasher, str]:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    # Verified against when the email is unknown, so that a miss costs as long as a hit.
    return hasher, hasher.hash("tradecast-timing-equaliser")


def _for(settings: Settings) -> tuple[PasswordHasher, str]:
    return _hasher(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


async def hash_password(settings: Settings, password: str) -> str:
    hasher, _ = _for(settings)
    return await to_thread.run_sync(hasher.hash, password)


async def verify_password(settings: Settings, password_hash: str | None, password: str) -> Verdict:
    hasher, dummy = _for(settings)

    def check() -> Verdict:
        try:
            hasher.verify(password_hash or dummy, password)
        except (VerificationError, InvalidHashError):
            return Verdict(valid=False)
        if password_hash is None:
            return Verdict(valid=False)
        return Verdict(valid=True, needs_rehash=hasher.check_needs_rehash(password_hash))

    return await to_thread.run_sync(check)
