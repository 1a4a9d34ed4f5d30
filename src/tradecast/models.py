"""Every ORM module, imported in one place so that metadata is complete for Alembic."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "tradecast.users.models",
    "tradecast.audit.models",
    "tradecast.signed.nonces",
    "tradecast.producers.models",
    "tradecast.devices.models",
    "tradecast.signals.models",
    "tradecast.delivery.models",
    "tradecast.executions.models",
    "tradecast.reconciliation.models",
    "tradecast.outbox.models",
    "tradecast.affiliates.models",
    "tradecast.telegram.models",
    "tradecast.jobruns",
)


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
