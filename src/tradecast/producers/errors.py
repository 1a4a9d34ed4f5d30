from __future__ import annotations

from tradecast.errors import Conflict, NotFound


class ProducerNotFound(NotFound):
    code = "producer_not_found"
    title = "No such producer"


class ProducerNameTaken(Conflict):
    code = "producer_name_taken"
    title = "Producer name already in use"


class ProducerInactive(Conflict):
    code = "producer_inactive"
    title = "Producer is deactivated"
