from __future__ import annotations

from tradecast.errors import Conflict, NotFound


class SignalNotDelivered(NotFound):
    code = "signal_not_delivered"
    title = "Signal was never pending for this device"


class ReportIdReused(Conflict):
    code = "report_id_conflict"
    title = "report_id already used for a different report"
