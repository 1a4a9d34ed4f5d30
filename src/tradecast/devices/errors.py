"""Why a device operation was refused."""

from __future__ import annotations

from tradecast.errors import Conflict, NotFound


class DeviceNotFound(NotFound):
    # Also the answer for another user's device: its existence is not ours to reveal.
    code = "device_not_found"
    title = "Device not found"


class DeviceNameTaken(Conflict):
    code = "device_name_taken"
    title = "Device name already in use"


class DeviceLimitReached(Conflict):
    code = "device_limit_reached"
    title = "Too many active devices"


class DeviceInactive(Conflict):
    code = "device_inactive"
    title = "Device has been deleted"
