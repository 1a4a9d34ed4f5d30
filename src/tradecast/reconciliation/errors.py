from __future__ import annotations

from tradecast.errors import Conflict, NotFound


class IssueNotFound(NotFound):
    code = "issue_not_found"
    title = "No such reconciliation issue"


class IssueAlreadyResolved(Conflict):
    code = "issue_already_resolved"
    title = "Issue already resolved"
