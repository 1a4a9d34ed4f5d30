from __future__ import annotations

from tradecast.errors import Conflict, NotFound


class SignalNotFound(NotFound):
    code = "signal_not_found"
    title = "No such signal"


class SignalNotOpen(Conflict):
    code = "signal_not_open"
    title = "Signal is not open"


class AlreadyDecided(Conflict):
    code = "already_decided"
    title = "Signal already approved or rejected"
