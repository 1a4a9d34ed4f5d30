"""``SignedDevice``: the device that signed the request (SPEC §2), for device endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.db import DbSession
from tradecast.devices.models import Device
from tradecast.devices.repository import DeviceRepository
from tradecast.kit.request_context import current
from tradecast.kit.secretbox import SecretBox
from tradecast.signed.dependencies import AppSecretBox, verify_request
from tradecast.signed.errors import KeyInactive, UnknownKey
from tradecast.signed.verification import KeyLookup, SigningKey


def device_key_lookup(box: SecretBox) -> KeyLookup:
    """Find a device's signing key by id, opening its sealed secret with ``box``."""

    async def lookup(session: AsyncSession, key_id: uuid.UUID) -> SigningKey | None:
        device = await DeviceRepository(session).get(key_id)
        if device is None:
            return None
        if not device.is_active:
            # Refused before the signature is checked: a revoked secret is never opened again.
            return SigningKey(key_id=device.id, secret="", is_active=False)
        secret = box.open(device.secret_sealed, context=str(device.id))
        return SigningKey(key_id=device.id, secret=secret, is_active=True)

    return lookup


async def signed_device(
    request: Request,
    session: DbSession,
    box: AppSecretBox,
) -> Device:
    """Verify the signature, then load the device in the request's unit of work.

    Verification runs in its own short transactions, so it must come before
    anything else touches ``session`` (on SQLite the first statement of the
    unit of work takes the write lock that the nonce claim also needs).
    """
    key = await verify_request(request, device_key_lookup(box))
    device = await DeviceRepository(session).get(key.key_id)
    # Deleted, or its owner's account removed, between verification and here.
    if device is None:
        raise UnknownKey()
    if not device.is_active:
        raise KeyInactive()
    context = current()
    if context is not None:
        context.device_id = str(device.id)
    return device


SignedDevice = Annotated[Device, Depends(signed_device)]
