from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response, status

from tradecast.config import AppSettings, Settings
from tradecast.db import DbSession
from tradecast.devices import service
from tradecast.devices.dependencies import SignedDevice, forget_key_after_commit
from tradecast.devices.errors import (
    DeviceInactive,
    DeviceLimitReached,
    DeviceNameTaken,
    DeviceNotFound,
)
from tradecast.devices.models import Device
from tradecast.devices.schemas import (
    DeviceCreate,
    DeviceCreated,
    DeviceOut,
    DeviceUpdate,
    SecretRotated,
    WhoAmI,
)
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.kit import clock
from tradecast.signed.dependencies import AppSecretBox
from tradecast.signed.errors import SIGNED_REQUEST_ERRORS
from tradecast.users.dependencies import CurrentUser

router = APIRouter(prefix="/api/v1")

_DEVICE = "/devices/{device_id}"


def _out(device: Device, settings: Settings, now: datetime) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        device_name=device.device_name,
        is_active=device.is_active,
        is_online=service.is_online(device, now, settings.device_online_s),
        last_poll=device.last_poll,
        last_ack=device.last_ack,
        created_at=device.created_at,
    )


def _no_store(response: Response) -> None:
    # The body holds a secret: no browser, proxy or client cache may keep a copy.
    response.headers["Cache-Control"] = "no-store"


@router.post(
    "/devices",
    tags=["devices"],
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceCreated,
    responses=responses_for(Unauthorized, DeviceNameTaken, DeviceLimitReached, UnprocessableEntity),
)
async def register_device(
    body: DeviceCreate,
    user: CurrentUser,
    session: DbSession,
    settings: AppSettings,
    box: AppSecretBox,
    response: Response,
) -> DeviceCreated:
    """Register a trading terminal. The response carries the device's HMAC `secret`:
    it is shown this once and never again (rotate it if it is lost). The `id` is
    the terminal's `X-Key-Id`. Names are unique among the account's active
    devices; an account may have at most `MAX_DEVICES_PER_USER` (10) active devices."""
    created = await service.register(session, settings, box, user, body.device_name)
    _no_store(response)
    device = created.device
    return DeviceCreated(
        id=device.id,
        device_name=device.device_name,
        secret=created.secret,
        is_active=device.is_active,
        created_at=device.created_at,
    )


@router.get(
    "/devices",
    tags=["devices"],
    response_model=list[DeviceOut],
    responses=responses_for(Unauthorized),
)
async def list_devices(
    user: CurrentUser, session: DbSession, settings: AppSettings
) -> list[DeviceOut]:
    """The account's devices, deleted ones included (`is_active` false) so their
    history stays traceable: active devices first, newest first within each group.
    `is_online` means active and polled within the last `DEVICE_ONLINE_S` (300) seconds."""
    now = clock.utcnow()
    return [_out(device, settings, now) for device in await service.list_devices(session, user)]


@router.get(
    _DEVICE,
    tags=["devices"],
    response_model=DeviceOut,
    responses=responses_for(Unauthorized, DeviceNotFound, UnprocessableEntity),
)
async def get_device(
    device_id: uuid.UUID, user: CurrentUser, session: DbSession, settings: AppSettings
) -> DeviceOut:
    """One of the account's devices. Another account's device answers 404."""
    device = await service.owned_device(session, user, device_id)
    return _out(device, settings, clock.utcnow())


@router.patch(
    _DEVICE,
    tags=["devices"],
    response_model=DeviceOut,
    responses=responses_for(
        Unauthorized, DeviceNotFound, DeviceNameTaken, DeviceInactive, UnprocessableEntity
    ),
)
async def rename_device(
    device_id: uuid.UUID,
    body: DeviceUpdate,
    user: CurrentUser,
    session: DbSession,
    settings: AppSettings,
) -> DeviceOut:
    """Rename a device; the name must stay unique among the account's active devices.
    A deleted device cannot be renamed (409 `device_inactive`)."""
    device = await service.rename(session, user, device_id, body.device_name)
    return _out(device, settings, clock.utcnow())


@router.post(
    f"{_DEVICE}/rotate-secret",
    tags=["devices"],
    response_model=SecretRotated,
    responses=responses_for(Unauthorized, DeviceNotFound, DeviceInactive, UnprocessableEntity),
)
async def rotate_device_secret(
    device_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    box: AppSecretBox,
    request: Request,
    response: Response,
) -> SecretRotated:
    """Issue a new secret for the device, shown this once. The old secret stops
    verifying immediately: requests signed with it answer 401 `bad_signature`."""
    rotated = await service.rotate_secret(session, box, user, device_id)
    forget_key_after_commit(request, device_id)
    _no_store(response)
    return SecretRotated(id=rotated.device.id, secret=rotated.secret)


@router.delete(
    _DEVICE,
    tags=["devices"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses_for(Unauthorized, DeviceNotFound, UnprocessableEntity),
)
async def delete_device(
    device_id: uuid.UUID, user: CurrentUser, session: DbSession, request: Request
) -> None:
    """Deactivate the device for good: its signed requests answer 401 `key_inactive`,
    its name becomes free, and its deliveries, reports and trades stay. It remains
    listed with `is_active` false. Deleting a deleted device again is a no-op (204)."""
    await service.revoke(session, user, device_id)
    forget_key_after_commit(request, device_id)


@router.get(
    "/exec/whoami",
    tags=["delivery"],
    response_model=WhoAmI,
    responses=responses_for(*SIGNED_REQUEST_ERRORS),
)
async def whoami(device: SignedDevice) -> WhoAmI:
    """Device-signed. Checks a terminal's credentials and clock without side effects:
    the device the signature belongs to, and the server's time. Not in SPEC; a
    terminal calls it once at start-up, before it begins to poll."""
    return WhoAmI(device_id=device.id, device_name=device.device_name, server_time=clock.utcnow())
