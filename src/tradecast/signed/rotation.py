"""Re-sealing device and producer secrets after a ``SECRET_KEY`` rotation.

Procedure: set the new ``SECRET_KEY``, put the old one in
``PREVIOUS_SECRET_KEYS``, deploy, run ``tradecast reseal-secrets``, then drop
the old key from ``PREVIOUS_SECRET_KEYS``. Devices and producers keep their
HMAC secrets throughout; only the sealing at rest changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.devices.models import Device
from tradecast.kit.secretbox import SecretBox
from tradecast.producers.models import Producer


class SealedSecretRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def devices(self) -> Sequence[Device]:
        return (await self.session.scalars(select(Device).with_for_update())).all()

    async def producers(self) -> Sequence[Producer]:
        return (await self.session.scalars(select(Producer).with_for_update())).all()


async def reseal_all(session: AsyncSession, box: SecretBox) -> int:
    """Re-seal every secret not sealed with the current key; returns how many."""
    repo = SealedSecretRepository(session)
    changed = 0
    holders: list[Device | Producer] = [*await repo.devices(), *await repo.producers()]
    for holder in holders:
        if box.needs_reseal(holder.secret_sealed):
            context = str(holder.id)
            holder.secret_sealed = box.seal(
                box.open(holder.secret_sealed, context=context), context=context
            )
            changed += 1
    await session.flush()
    return changed
