"""Poll throughput and latency against a bare FastAPI endpoint, same server, same run.

    python -m bench.poll [--seconds 15] [--connections 64] [--workers 1 2] [--smoke]

The load generator (wrk) sends correctly signed requests, each with its own
nonce, generated just before each run and spread over all seeded devices.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import wrk
from bench.cpu import CpuUse, metered
from bench.fixtures import device_secret, prepare, server_env
from bench.seed import Shape, device_id
from bench.servers import Server, serve
from tradecast.kit import signing

POLL_PATH = "/api/v1/exec/poll"
# Most devices have nothing or one or two signals waiting: 100 open signals,
# each device has been given 99 and settled 98.
FULL = Shape(open_signals=100, delivered_per_device=99, settled_per_device=98)
# 1,000 devices: at 20 signed requests a second per key (SPEC), a fleet of 250
# devices was answered 429 above 5,000 polls a second, which a fast machine reaches.
SMOKE = Shape(
    users=200, signals=2_000, open_signals=20, delivered_per_device=19, settled_per_device=18
)


@dataclass(frozen=True)
class Row:
    workers: int
    name: str
    result: wrk.Result
    # CPU of the server and of PostgreSQL during the run.
    cpu: CpuUse


Measure = Callable[[str, Shape, int, int, Path], wrk.Result]


def measured_row(
    workers: int,
    name: str,
    server: Server,
    measure: Measure,
    shape: Shape,
    args: argparse.Namespace,
    scratch: Path,
) -> Row:
    """``measure`` against ``server`` with the run's settings, and the CPU it cost."""
    with metered(server.pid) as use:
        result = measure(server.url, shape, args.seconds, args.connections, scratch)
    return Row(workers, name, result, use)


def presign(shape: Shape, count: int, path: Path) -> None:
    stamp = str(int(time.time()))
    run = os.urandom(4).hex()
    with path.open("w") as out:
        for i in range(count):
            device = device_id(1 + i % shape.devices)
            headers = signing.sign_request(
                key_id=device,
                secret=device_secret(device),
                method="GET",
                path=POLL_PATH,
                query={"limit": "50"},
                timestamp=int(stamp),
                nonce=f"bench{run}{i:012d}",
            )
            joined = "|".join(f"{k}:{v}" for k, v in headers.items())
            out.write(f"GET\t{POLL_PATH}?limit=50\t{joined}\t\n")


def measure(url: str, shape: Shape, seconds: int, connections: int, scratch: Path) -> wrk.Result:
    requests = scratch / "requests.tsv"
    # Enough distinct nonces for a fast server; wrk wraps around only if it runs out.
    presign(shape, max(20_000, seconds * 12_000), requests)
    return wrk.run(url, requests, seconds=seconds, connections=connections)


def warm_up(url: str, shape: Shape, connections: int, scratch: Path) -> None:
    """Every device polls once, as on a service that has been up: its key is in the
    process's cache (for DEVICE_KEY_CACHE_TTL_S), its statements are prepared."""
    rate = measure(url, shape, 2, connections, scratch).requests_per_s
    requests = scratch / "warm-up.tsv"
    presign(shape, shape.devices, requests)
    # wrk cannot end a run early: give it the time the fleet takes at the rate just
    # seen, within the key cache's lifetime; each request is still sent only once.
    seconds = min(45, math.ceil(shape.devices / max(rate, 1) * 1.2) + 1)
    wrk.run(url, requests, seconds=seconds, connections=connections, once=True)


def run(args: argparse.Namespace) -> list[Row]:
    shape = SMOKE if args.smoke else FULL
    dsn = asyncio.run(prepare("tradecast_bench_poll", shape))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for workers in args.workers:
            env = server_env(dsn, TRADECAST_BACKGROUND_JOBS_ENABLED="true")
            for name, factory, server_env_ in (
                ("bare FastAPI endpoint", "bench.baseline_app:create_app", None),
                ("tradecast poll", "tradecast.main:create_app", env),
            ):
                with serve(factory, workers=workers, env=server_env_) as server:
                    warm_up(server.url, shape, args.connections, scratch)
                    rows.append(measured_row(workers, name, server, measure, shape, args, scratch))
    return rows


def report_rows(title: str, rows: list[Row], args: argparse.Namespace, data: str) -> None:
    print(f"\n{title}: {args.connections} connections, {args.seconds} s per run, {data}")
    print("CPU per request: the server's processes and PostgreSQL's, in ms")
    print(
        f"{'workers':>7}  {'endpoint':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        f" {'server':>7} {'PG':>6}  vs baseline"
    )
    baseline: dict[int, float] = {}
    for row in rows:
        r = row.result
        if row.name.startswith("bare"):
            baseline[row.workers] = r.requests_per_s
        ratio = (
            f"{r.requests_per_s / baseline[row.workers]:.2f}×" if baseline.get(row.workers) else "-"
        )
        per_request = 1000 / max(r.total, 1)
        server_ms, postgres_ms = row.cpu.server_s * per_request, row.cpu.postgres_s * per_request
        print(
            f"{row.workers:>7}  {row.name:<22} {r.requests_per_s:>9.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.non_2xx:>8}"
            f" {server_ms:>7.2f} {postgres_ms:>6.2f}  {ratio}"
        )


def report(rows: list[Row], args: argparse.Namespace) -> None:
    data = "smoke data" if args.smoke else "100,000 signals, 10,000 devices"
    report_rows("poll", rows, args, f"PostgreSQL, {data}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny data, short runs")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = min(args.seconds, 2)
        args.workers = [1]
    if not wrk.available():
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    report(run(args), args)


if __name__ == "__main__":
    main()
