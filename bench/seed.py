"""Bulk data for benchmarks and plan checks, generated inside PostgreSQL.

``generate_series`` writes hundreds of thousands of rows in seconds; the
shape is a service some months in: nearly all signals expired or cancelled,
a few hundred open, and every device with a history of deliveries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import asyncpg


@dataclass(frozen=True)
class Shape:
    users: int = 2_000
    devices_per_user: int = 5
    signals: int = 100_000
    open_signals: int = 100
    delivered_per_device: int = 80
    settled_per_device: int = 60
    approval_users_every: int = 10  # every 10th user delivers in approval mode
    referrals: bool = False
    history_per_device: int = 0  # past fills per device, each with its trade and report

    @property
    def devices(self) -> int:
        return self.users * self.devices_per_user


SEED_SQL = """
INSERT INTO users (id, email, password_hash, role, delivery_mode, created_at, updated_at)
SELECT md5('user' || g)::uuid, 'bench' || g || '@example.org', 'not-a-login', 'user',
       CASE WHEN g % {approval_users_every} = 0 THEN 'approval' ELSE 'auto' END,
       now() - interval '90 days', now() - interval '90 days'
FROM generate_series(1, {users}) AS g;

INSERT INTO devices (id, user_id, device_name, secret_sealed, is_active, created_at)
SELECT md5('device' || g)::uuid, md5('user' || (1 + (g - 1) / {devices_per_user}))::uuid,
       'terminal ' || g, 'sealed', true, now() - interval '60 days'
FROM generate_series(1, {users} * {devices_per_user}) AS g;

INSERT INTO signals (id, instrument, side, order_type, entry_price, status,
                     expires_at, created_at)
SELECT md5('signal' || g)::uuid,
       (ARRAY['EURUSD', 'GBPUSD', 'XAUUSD', 'USDJPY'])[1 + g % 4],
       CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END, 'market', 1.1 + g / 1e6,
       CASE WHEN g > {signals} - {open_signals} THEN 'open' WHEN g % 7 = 0 THEN 'cancelled' ELSE 'expired' END,
       CASE WHEN g > {signals} - {open_signals} THEN now() + interval '1 hour'
            ELSE now() - interval '60 days' + g * interval '1 minute' END,
       now() - interval '60 days' + g * interval '30 seconds'
FROM generate_series(1, {signals}) AS g;

INSERT INTO signal_approvals (signal_id, user_id, decision, decided_at)
SELECT md5('signal' || s)::uuid, md5('user' || u)::uuid,
       CASE WHEN s % 2 = 0 THEN 'approved' ELSE 'rejected' END, now()
FROM generate_series(1, {users}) AS u, generate_series({signals} - {open_signals} + 1, {signals}) AS s
WHERE u % {approval_users_every} = 0;

INSERT INTO deliveries (device_id, signal_id, first_delivered_at, settled_at)
SELECT md5('device' || d)::uuid, md5('signal' || s)::uuid, now(),
       CASE WHEN s <= {signals} - {open_signals} + {settled_per_device} THEN now() END
FROM generate_series(1, {users} * {devices_per_user}) AS d, generate_series({signals} - {open_signals} + 1, {signals} - {open_signals} + {delivered_per_device}) AS s;

{referrals}
{history}
"""

# Every 20th user is an affiliate; every other user is referred by one of them,
# so most fills earn a commission, as the affiliate program intends.
REFERRALS_SQL = """
INSERT INTO affiliates (id, user_id, referral_token, status, created_at)
SELECT md5('affiliate' || g)::uuid, md5('user' || g)::uuid, 'bench' || g, 'active', now() - interval '80 days'
FROM generate_series(20, {users}, 20) AS g;

INSERT INTO referrals (id, affiliate_id, referred_user_id, source, status, flag_reasons, created_at)
SELECT md5('referral' || g)::uuid, md5('affiliate' || (20 * (1 + g % ({users} / 20))))::uuid,
       md5('user' || g)::uuid, 'signup', 'active', '[]', now() - interval '70 days'
FROM generate_series(1, {users}) AS g
WHERE g % 20 <> 0 AND {users} >= 20;
"""


# Each device copied the ``history_per_device`` signals before the open ones, over
# the last four weeks: a settled delivery, an ACK and a fill report, a one-fill
# trade, the audit event and, for a referred user, the earned commission. The
# execution tables hold what a service some weeks in holds, so their statistics
# and plans are those of a service in use, and each affiliate's 30-day volume
# spans hundreds of commissions.
HISTORY_SQL = """
CREATE TEMPORARY TABLE history AS
SELECT d, h, 1 + (d - 1) / {devices_per_user} AS u,
       {signals} - {open_signals} - {history_per_device} + h AS s,
       now() - (h - 1) * interval '27 days' / {history_per_device} - (d % 3600) * interval '1 second' AS at
FROM generate_series(1, {users} * {devices_per_user}) AS d, generate_series(1, {history_per_device}) AS h;

INSERT INTO deliveries (device_id, signal_id, first_delivered_at, settled_at)
SELECT md5('device' || d)::uuid, md5('signal' || s)::uuid, at, at FROM history;

INSERT INTO trades (id, user_id, device_id, signal_id, instrument, side, size, cost, price,
                    notional, fill_count, opened_at, updated_at)
SELECT md5('trade' || d || ':' || h)::uuid, md5('user' || u)::uuid, md5('device' || d)::uuid,
       sig.id, sig.instrument, sig.side, 0.01, 0.011, 1.1, 1100, 1, at, at
FROM history JOIN signals AS sig ON sig.id = md5('signal' || s)::uuid;

INSERT INTO execution_reports (id, device_id, signal_id, report_id, execution_type, fill_price,
                               fill_size, trade_id, fingerprint, created_at)
SELECT md5('fill' || d || ':' || h)::uuid, md5('device' || d)::uuid, md5('signal' || s)::uuid,
       'past-fill-' || h, 'fill', 1.1, 0.01, md5('trade' || d || ':' || h)::uuid,
       md5('fill' || d || ':' || h) || md5('fill' || d || ':' || h), at
FROM history
UNION ALL
SELECT md5('ack' || d || ':' || h)::uuid, md5('device' || d)::uuid, md5('signal' || s)::uuid,
       'past-ack-' || h, 'ack', NULL, NULL, NULL,
       md5('ack' || d || ':' || h) || md5('ack' || d || ':' || h), at - interval '1 second'
FROM history;

INSERT INTO audit_events (id, occurred_at, actor_type, actor_id, action, target_type, target_id,
                          metadata)
SELECT md5('audit' || d || ':' || h)::uuid, at, 'device', md5('device' || d)::uuid,
       'execution.fill', 'signal', md5('signal' || s)::uuid::text,
       json_build_object('report_id', 'past-fill-' || h, 'fill_price', '1.1', 'fill_size', '0.01')
FROM history;

INSERT INTO commissions (id, affiliate_id, referral_id, referred_user_id, trade_id,
                         execution_report_id, notional, tier, rate, amount, status, created_at)
SELECT md5('commission' || d || ':' || h)::uuid, ref.affiliate_id, ref.id, ref.referred_user_id,
       md5('trade' || d || ':' || h)::uuid, md5('fill' || d || ':' || h)::uuid,
       1100, 4, 0.02, 22.00, 'earned', at
FROM history JOIN referrals AS ref ON ref.referred_user_id = md5('user' || u)::uuid;

DROP TABLE history;
"""


async def seed(dsn: str, shape: Shape, *, vacuum: bool = True) -> None:
    """Fill the database; ``vacuum=False`` leaves ``vacuum_analyze`` to the caller,
    for data it adds first."""
    # Only integers from Shape are formatted in; nothing here comes from outside.
    values = asdict(shape)
    values["referrals"] = REFERRALS_SQL.format(**values) if shape.referrals else ""
    values["history"] = HISTORY_SQL.format(**values) if shape.history_per_device else ""
    script = SEED_SQL.format(**values)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(script)
    finally:
        await connection.close()
    if vacuum:
        await vacuum_analyze(dsn)


async def vacuum_analyze(dsn: str) -> None:
    """As on a service that has been up: autovacuum has visited the bulk-loaded
    tables, so their statistics are current and their visibility maps set
    (index-only scans need the latter). VACUUM runs outside any transaction."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


def device_id(n: int) -> str:
    """The id seeded for device ``n`` (1-based)."""
    import hashlib
    import uuid

    return str(uuid.UUID(hashlib.md5(f"device{n}".encode()).hexdigest()))  # noqa: S324


def user_id(n: int) -> str:
    import hashlib
    import uuid

    return str(uuid.UUID(hashlib.md5(f"user{n}".encode()).hexdigest()))  # noqa: S324
