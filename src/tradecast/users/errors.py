from __future__ import annotations

from typing import ClassVar

from tradecast.errors import Conflict, Forbidden, Unauthorized


class EmailAlreadyRegistered(Conflict):
    code = "email_taken"
    title = "Email already registered"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Wrong email or password"
    # The failed attempt's audit event must survive the 401.
    keeps_changes: ClassVar[bool] = True


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "Invalid or expired token"


class RefreshTokenReused(Unauthorized):
    code = "refresh_token_reused"
    title = "Refresh token already used"
    # A replayed refresh token means it leaked: the whole family is revoked, and
    # that revocation must be committed even though the request fails.
    keeps_changes: ClassVar[bool] = True


class AdminRequired(Forbidden):
    code = "admin_required"
    title = "Administrator role required"
