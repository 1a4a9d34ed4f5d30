"""Access tokens (JWT, HS256, short-lived) and opaque refresh tokens (stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from tradecast.users.errors import InvalidToken
from tradecast.users.models import Role

ALGORITHM = "HS256"
AUDIENCE = "tradecast-api"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: Role


def issue_access_token(key: str, user_id: uuid.UUID, role: Role, now: datetime, ttl_s: int) -> str:
    claims = {
        "sub": str(user_id),
        "role": role.value,
        "aud": AUDIENCE,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(key: str, token: str, now: datetime) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "aud"], "verify_exp": False, "verify_iat": False},
        )
        # Time claims are checked against tradecast's clock, not the library's.
        if int(claims["exp"]) <= now.timestamp() or claims.get("typ") != "access":
            raise InvalidToken()
        return AccessClaims(user_id=uuid.UUID(claims["sub"]), role=Role(claims["role"]))
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise InvalidToken() from exc


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
