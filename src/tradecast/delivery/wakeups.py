from __future__ import annotations

import uuid

from fastapi import Request


async def notify_signal_pending(request: Request, signal_id: uuid.UUID) -> None:
    """Wakes long-polling devices; implemented by the delivery package."""
    return None
