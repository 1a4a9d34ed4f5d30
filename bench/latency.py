"""Signal-to-device latency and memory per held long poll.

    python -m bench.latency [--devices 1 1000 10000] [--workers 2] [--rounds 30] [--smoke]

For each device count: that many devices (one per user, auto delivery) hold a
long poll; an admin publishes one signal; each device records when the
signal reached it. Latency is measured from the start of the publishing
request to each receipt: p50, p99 and max. With few devices the publish is
repeated (``--rounds``, 30 for one device by default) so that the percentiles
rest on enough receipts; for one device the receipts later than 20 ms are
counted, since with 30 rounds the p99 is the slowest round. The publishing
request's own time to its answer is printed beside them (median over the
rounds). The same is measured for devices polling plainly once a second,
for comparison. The server's resident memory
is read before the devices connect and while they all wait.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from bench import cpu
from bench.fixtures import device_secret, prepare, server_env
from bench.rawhttp import Connection
from bench.seed import Shape, device_id
from bench.servers import serve
from tradecast.kit import signing

POLL = "/api/v1/exec/poll"
RAMP_PER_S = 2_000
MAX_ROUNDS = 30
WARM_UP_ROUNDS = 3


@dataclass(frozen=True)
class Figures:
    devices: int
    mode: str
    received: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_per_wait_kib: float | None
    # The publishing request alone, from its start to its answer (median over rounds):
    # the part of the latency spent before the server wakes anyone.
    publish_ms: float | None = None
    # Receipts later than 20 ms, the one-device target (printed for one device).
    over_20_ms: int = 0
    # The benchmark's own CPU from the publish to the last receipt (per round): it
    # shares the server's two cores, so it is part of what the latency shows.
    client_cpu_s: float | None = None


def _rss_kib(root_pid: int) -> int:
    """Resident memory of the server and its worker processes."""
    total = 0
    for pid in [root_pid, *cpu.children(root_pid)]:
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _signed_poll(n: int, wait: int) -> tuple[str, dict[str, str]]:
    device = device_id(n)
    query = {"limit": "10", "wait": str(wait)}
    headers = signing.sign_request(
        key_id=device, secret=device_secret(device), method="GET", path=POLL, query=query
    )
    return f"{POLL}?limit=10&wait={wait}", headers


async def _device_long_poll(
    host: str,
    port: int,
    n: int,
    ready: asyncio.Event,
    arrived: list[float],
    outcomes: Counter[str],
) -> None:
    try:
        connection = await Connection.open(host, port)
    except OSError as exc:
        outcomes[type(exc).__name__] += 1
        ready.set()
        return
    try:
        target, headers = _signed_poll(n, 30)
        request = asyncio.create_task(connection.request("GET", target, headers))
        ready.set()
        response = await request
        if response.status == 200 and b'"signals":[{' in response.body:
            arrived.append(time.perf_counter())
            outcomes["received"] += 1
        else:
            outcomes[f"{response.status} {response.body[:80]!r}"] += 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        outcomes[type(exc).__name__] += 1
    finally:
        connection.close()


async def _device_plain_poll(
    host: str, port: int, n: int, stop: asyncio.Event, arrived: list[float]
) -> None:
    connection = await Connection.open(host, port)
    await asyncio.sleep(random.random())  # spread the devices over the second
    try:
        while not stop.is_set():
            target, headers = _signed_poll(n, 0)
            response = await connection.request("GET", target, headers)
            if response.status == 200 and b'"signals":[{' in response.body:
                arrived.append(time.perf_counter())
                return
            await asyncio.sleep(1)
    finally:
        connection.close()


async def _admin_token(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as client:
        email = f"bench-admin-{os.urandom(3).hex()}@example.org"
        from tradecast.cli import _create_user  # the path `tradecast create-admin` takes
        from tradecast.config import Settings
        from tradecast.users.models import Role

        await _create_user(Settings(), email, "bench password", Role.ADMIN)
        login = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": "bench password"}
        )
        return str(login.json()["access_token"])


async def _publish(client: httpx.AsyncClient, token: str) -> tuple[float, float]:
    """Publish one signal; returns when the publishing request started and how
    long it took to be answered (ms)."""
    started = time.perf_counter()
    response = await client.post(
        "/api/v1/signals",
        json={"instrument": "EURUSD", "side": "buy", "order_type": "market"},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return started, (time.perf_counter() - started) * 1000


async def _cancel_open(url: str, token: str) -> None:
    """Cancel what the previous run published, so the next run starts with nothing pending."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        listed = await client.get("/api/v1/signals", params={"status": "open", "limit": 200})
        for signal in listed.json()["items"]:
            await client.post(f"/api/v1/signals/{signal['id']}/cancel")


def _figures(
    devices: int,
    mode: str,
    latencies_ms: list[float],
    rss: float | None,
    client_cpu_s: float | None = None,
    publish_ms: list[float] | None = None,
) -> Figures:
    latencies = sorted(latencies_ms)
    publish = statistics.median(publish_ms) if publish_ms else None
    if not latencies:
        nan = float("nan")
        return Figures(devices, mode, 0, nan, nan, nan, rss, publish, 0, client_cpu_s)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    median = statistics.median(latencies)
    over = sum(latency > 20 for latency in latencies)
    return Figures(
        devices, mode, len(latencies), median, p99, latencies[-1], rss, publish, over, client_cpu_s
    )


def rounds_for(devices: int, max_rounds: int = MAX_ROUNDS) -> int:
    """Few devices give few samples per publish: repeat until there are enough."""
    return max(1, min(max_rounds, 1000 // devices))


async def long_poll_runs(
    url: str, pid: int, devices: int, token: str, max_rounds: int = MAX_ROUNDS
) -> Figures:
    """``rounds_for(devices)`` rounds of :func:`long_poll_run`, their latencies pooled."""
    latencies: list[float] = []
    publishes: list[float] = []
    per_wait: float | None = None
    client_cpu = 0.0
    rounds = rounds_for(devices, max_rounds)
    for _ in range(rounds):
        round_latencies, per_wait, round_cpu, publish_ms = await long_poll_run(
            url, pid, devices, token
        )
        latencies += round_latencies
        publishes.append(publish_ms)
        client_cpu += round_cpu
        await _cancel_open(url, token)
    return _figures(devices, "long poll", latencies, per_wait, client_cpu / rounds, publishes)


async def long_poll_run(
    url: str, pid: int, devices: int, token: str, *, report: bool = True
) -> tuple[list[float], float | None, float, float]:
    """One publish to ``devices`` held long polls: each receipt's latency (ms), the
    server's memory per held poll, this client's CPU seconds from the publish on,
    and how long the publishing request took to be answered (ms)."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    before = _rss_kib(pid)
    arrived: list[float] = []
    outcomes: Counter[str] = Counter()
    readies = [asyncio.Event() for _ in range(devices)]
    tasks = []
    # The fleet comes online at about RAMP_PER_S terminals a second, as a real one
    # does; a herd of 10,000 first looks in the same instant is another test.
    for i in range(devices):
        tasks.append(
            asyncio.create_task(_device_long_poll(host, port, i + 1, readies[i], arrived, outcomes))
        )
        if i % 100 == 99:
            await asyncio.sleep(100 / RAMP_PER_S)
    await asyncio.gather(*(ready.wait() for ready in readies))
    await asyncio.sleep(0.5 + devices / 2000)  # let every poll reach its wait
    during = _rss_kib(pid)
    async with httpx.AsyncClient(base_url=url) as publisher:
        await publisher.get("/healthz")  # the connection is open before the clock starts
        cpu_before = time.process_time()
        started, publish_ms = await _publish(publisher, token)
    await asyncio.wait(tasks, timeout=30)
    client_cpu = time.process_time() - cpu_before
    for task in tasks:
        task.cancel()
    per_wait = (during - before) / devices if devices >= 100 else None
    missed = {k: v for k, v in outcomes.items() if k != "received"}
    if report and (missed or len(arrived) < devices):
        print(f"  {devices} long polls: {devices - len(arrived)} without the signal: {missed}")
    return [(t - started) * 1000 for t in arrived], per_wait, client_cpu, publish_ms


async def plain_poll_run(url: str, devices: int, token: str) -> Figures:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    arrived: list[float] = []
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_device_plain_poll(host, port, i + 1, stop, arrived))
        for i in range(devices)
    ]
    await asyncio.sleep(2)
    async with httpx.AsyncClient(base_url=url) as publisher:
        await publisher.get("/healthz")
        cpu_before = time.process_time()
        started, publish_ms = await _publish(publisher, token)
    await asyncio.wait(tasks, timeout=30)
    client_cpu = time.process_time() - cpu_before
    stop.set()
    for task in tasks:
        task.cancel()
    latencies = [(t - started) * 1000 for t in arrived]
    return _figures(devices, "poll every 1 s", latencies, None, client_cpu, [publish_ms])


def run(args: argparse.Namespace) -> list[Figures]:
    rows = []
    for devices in args.devices:
        dsn = asyncio.run(
            prepare(
                "tradecast_bench_latency",
                Shape(
                    users=devices,
                    devices_per_user=1,
                    signals=0,
                    open_signals=0,
                    delivered_per_device=0,
                    settled_per_device=0,
                    approval_users_every=10**9,  # everyone in auto mode
                ),
            )
        )
        env = server_env(dsn)
        os.environ.update({k: v for k, v in env.items() if k != "TRADECAST_ENV"})
        with serve("tradecast.main:create_app", workers=args.workers, env=env) as server:
            token = asyncio.run(_admin_token(server.url))
            # A warm-up round on a few devices first: a service that has been running
            # has its statements prepared and its key cache filled.
            for _ in range(WARM_UP_ROUNDS):
                asyncio.run(
                    long_poll_run(server.url, server.pid, min(devices, 100), token, report=False)
                )
                asyncio.run(_cancel_open(server.url, token))
            rows.append(
                asyncio.run(long_poll_runs(server.url, server.pid, devices, token, args.rounds))
            )
            if devices <= args.plain_max:
                rows.append(asyncio.run(plain_poll_run(server.url, devices, token)))
    return rows


def report(rows: list[Figures], args: argparse.Namespace) -> None:
    print(f"\nsignal → device latency, {args.workers} worker(s), PostgreSQL")
    print(
        f"{'devices':>8}  {'mode':<15} {'received':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'> 20 ms':>8} {'publish ms':>11} {'KiB/held poll':>14} {'client CPU s':>13}"
    )
    for r in rows:
        rss = f"{r.rss_per_wait_kib:.1f}" if r.rss_per_wait_kib is not None else "-"
        cpu = f"{r.client_cpu_s:.2f}" if r.client_cpu_s is not None else "-"
        publish = f"{r.publish_ms:.1f}" if r.publish_ms is not None else "-"
        over = str(r.over_20_ms) if (r.devices, r.mode) == (1, "long poll") else "-"
        print(
            f"{r.devices:>8}  {r.mode:<15} {r.received:>9} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.max_ms:>8.1f} {over:>8} {publish:>11} {rss:>14} {cpu:>13}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 1000, 10000])
    parser.add_argument("--workers", type=int, default=2)
    # 10,000 devices polling every second ask for more polls than two cores serve: the
    # plain polls' figures then show that queue, which is the comparison's point.
    parser.add_argument(
        "--plain-max",
        type=int,
        default=10000,
        help="largest count also measured with plain polling",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=MAX_ROUNDS,
        help="publishes for a small fleet, whose receipts are pooled (1,000 // devices at most)",
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.devices, args.workers, args.plain_max = [1, 20], 1, 20
    report(run(args), args)


if __name__ == "__main__":
    main()
