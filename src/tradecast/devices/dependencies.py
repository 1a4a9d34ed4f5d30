"""``SignedDevice``: the device that signed the request (SPEC §2), for device endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from tradecast.db import Database, DbSession, after_commit
from tradecast.devices.models import Device
from tradecast.devices.repository import DeviceRepository, signing_row
from tradecast.kit.request_context import current
from tradecast.kit.secretbox import SecretBox
from tradecast.signed.dependencies import secretbox, verify_request
from tradecast.signed.errors import KeyInactive, UnknownKey
from tradecast.signed.keycache import KeyCache
from tradecast.signed.verification import KeyLookup, SigningKey


def device_key_lookup(db: Database, box: SecretBox) -> KeyLookup:
    """Find a device's signing key by id, opening its sealed secret with ``box``.

    One indexed read in autocommit: no session, no transaction.
    """

    async def lookup(key_id: uuid.UUID) -> SigningKey | None:
        device = await signing_row(db, key_id)
        if device is None:
            return None
        if not device.is_active:
            # Refused before the signature is checked: a revoked secret is never opened again.
            return SigningKey(key_id=device.id, secret="", is_active=False, owner_id=device.user_id)
        secret = box.open(device.secret_sealed, context=str(device.id))
        return SigningKey(key_id=device.id, secret=secret, is_active=True, owner_id=device.user_id)

    return lookup


def device_keys(request: Request) -> KeyCache:
    cache: KeyCache = request.app.state.device_keys
    return cache


def forget_key_after_commit(request: Request, device_id: uuid.UUID) -> None:
    """The device's secret or state changes with this request: once it commits, no
    process may verify with what it had cached."""
    cache = device_keys(request)
    after_commit(request, lambda: cache.forget(device_id))


async def signed_device_key(request: Request) -> SigningKey:
    """Verify the signature; the key may come from the process's key cache.

    For endpoints that check the device row themselves in their unit of work
    (the poll does, in the statement that records ``last_poll``; the reports in
    their first read): nothing here touches the database when the key is cached.
    """
    # The secret box straight from the app, not as a sub-dependency: on the hottest
    # path each resolved dependency is measurable.
    lookup = device_key_lookup(request.app.state.db, secretbox(request))
    key = await verify_request(request, lookup, device_keys(request))
    context = current()
    if context is not None:
        context.device_id = str(key.key_id)
    return key


async def signed_device(request: Request, session: DbSession) -> Device:
    """Verify the signature, then load the device in the request's unit of work.

    Verification runs in its own short transactions, so it must come before
    anything else touches ``session`` (on SQLite the first statement of the
    unit of work takes the write lock that the nonce claim also needs).
    """
    key = await signed_device_key(request)
    device = await DeviceRepository(session).get(key.key_id)
    # Deleted between verification and here, or while its key sat in the cache.
    if device is None:
        raise UnknownKey()
    if not device.is_active:
        raise KeyInactive()
    return device


SignedDevice = Annotated[Device, Depends(signed_device)]
SignedDeviceKey = Annotated[SigningKey, Depends(signed_device_key)]
