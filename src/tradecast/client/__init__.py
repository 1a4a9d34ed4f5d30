"""The reference device client: a small library and ``tradecast device run``.

It is what a terminal integration should do, in Python: sign every request
with ``tradecast.kit.signing``, long-poll, ACK, execute through a pluggable
executor, and report with stable ids from a local journal, so that a crash
between an execution and its report loses nothing.
"""

from tradecast.client.api import (
    CredentialsRejected,
    DeviceApi,
    PollAnswer,
    Rejected,
    RetryLater,
    backoff_delay,
)
from tradecast.client.executor import ExecutionRefused, Executor, Fill, PaperExecutor, Signal
from tradecast.client.journal import Journal, JournaledReport
from tradecast.client.runner import Runner, RunnerOptions, report_id

__all__ = [
    "CredentialsRejected",
    "DeviceApi",
    "ExecutionRefused",
    "Executor",
    "Fill",
    "Journal",
    "JournaledReport",
    "PaperExecutor",
    "PollAnswer",
    "Rejected",
    "RetryLater",
    "Runner",
    "RunnerOptions",
    "Signal",
    "backoff_delay",
    "report_id",
]
