"""Devices (SPEC §5): registration, naming, secret rotation and revocation.

A device's secret exists in clear text only in the response that creates or
rotates it and, transiently, while a signed request is verified; the table
holds it sealed (kit/secretbox.py) and nothing writes it to a log or an audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.devices.errors import (
    DeviceInactive,
    DeviceLimitReached,
    DeviceNameTaken,
    DeviceNotFound,
)
from tradecast.devices.models import Device
from tradecast.devices.repository import DeviceRepository
from tradecast.kit import clock
from tradecast.kit.secretbox import SecretBox, generate_secret
from tradecast.users.models import User


@dataclass(frozen=True)
class DeviceWithSecret:
    device: Device
    secret: str


def is_online(device: Device, now: datetime, window_s: int) -> bool:
    """Active and polled within the window; a deleted device is never online."""
    if not device.is_active or device.last_poll is None:
        return False
    return now - device.last_poll <= timedelta(seconds=window_s)


async def register(
    session: AsyncSession, settings: Settings, box: SecretBox, user: User, name: str
) -> DeviceWithSecret:
    devices = DeviceRepository(session)
    # The device limit is guarded by the owner's row lock: concurrent registrations
    # of one user count their active devices one after the other, never side by side.
    await devices.lock_owner(user.id)
    if await devices.count_active(user.id) >= settings.max_devices_per_user:
        raise DeviceLimitReached(
            f"At most {settings.max_devices_per_user} active devices per account; "
            "delete one to register another"
        )
    device_id = uuid.uuid4()
    secret = generate_secret()
    device = Device(
        id=device_id,
        user_id=user.id,
        device_name=name,
        # Sealed with the device id as context: the value opens on this row only.
        secret_sealed=box.seal(secret, context=str(device_id)),
        is_active=True,
        created_at=clock.utcnow(),
    )
    devices.add(device)
    await _flush_unique_name(session, name)
    _audit(session, user, device, "device.registered", {"device_name": name})
    return DeviceWithSecret(device, secret)


async def list_devices(session: AsyncSession, user: User) -> Sequence[Device]:
    return await DeviceRepository(session).for_user(user.id)


async def owned_device(
    session: AsyncSession, user: User, device_id: uuid.UUID, *, for_update: bool = False
) -> Device:
    """The caller's device. Another user's device is not found, for admins too: a
    device's secret and name are its owner's business, and admins see executions
    and reconciliation issues through their own endpoints."""
    device = await DeviceRepository(session).owned(device_id, user.id, for_update=for_update)
    if device is None:
        raise DeviceNotFound(f"No device {device_id} in this account")
    return device


async def rename(session: AsyncSession, user: User, device_id: uuid.UUID, name: str) -> Device:
    device = await _active_for_update(session, user, device_id)
    if device.device_name == name:
        return device
    previous = device.device_name
    device.device_name = name
    await _flush_unique_name(session, name)
    _audit(session, user, device, "device.renamed", {"from": previous, "to": name})
    return device


async def rotate_secret(
    session: AsyncSession, box: SecretBox, user: User, device_id: uuid.UUID
) -> DeviceWithSecret:
    device = await _active_for_update(session, user, device_id)
    secret = generate_secret()
    # Verification reads the sealed secret afresh for every request, so the old
    # secret fails from the moment this commits.
    device.secret_sealed = box.seal(secret, context=str(device.id))
    await session.flush()
    _audit(session, user, device, "device.secret_rotated", {})
    return DeviceWithSecret(device, secret)


async def revoke(session: AsyncSession, user: User, device_id: uuid.UUID) -> None:
    """Deactivate the device for good; deleting it again is a no-op.

    The row stays, so its deliveries, execution reports and trades keep their
    device, and its name becomes free for a new device.
    """
    device = await owned_device(session, user, device_id, for_update=True)
    if not device.is_active:
        return
    device.is_active = False
    device.revoked_at = clock.utcnow()
    await session.flush()
    _audit(session, user, device, "device.revoked", {"device_name": device.device_name})


async def _active_for_update(session: AsyncSession, user: User, device_id: uuid.UUID) -> Device:
    # The row lock orders a rename or rotation against a concurrent delete: neither
    # can act on a device that a committed delete has already deactivated.
    device = await owned_device(session, user, device_id, for_update=True)
    if not device.is_active:
        raise DeviceInactive("This device was deleted; register a new one instead")
    return device


async def _flush_unique_name(session: AsyncSession, name: str) -> None:
    # Name uniqueness is guarded by the partial unique index on (user_id,
    # device_name) among active devices; the savepoint keeps the request's
    # transaction usable after the violation.
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise DeviceNameTaken(f"Another active device is already named {name!r}") from exc


def _audit(
    session: AsyncSession, user: User, device: Device, action: str, metadata: dict[str, str]
) -> None:
    audit.record(
        session,
        action,
        actor_type=ActorType.USER,
        actor_id=user.id,
        target_type="device",
        target_id=device.id,
        metadata=metadata,
    )
