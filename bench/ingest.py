"""Fill-report ingest rate: each fill stored once, with its trade update, the
affiliate's commission and the audit event in one transaction, against a bare
FastAPI endpoint served the same way.

    python -m bench.ingest [--seconds 10] [--connections 64] [--workers 1 2] [--history 10] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import wrk
from bench.fixtures import device_secret, prepare, server_env
from bench.poll import Row, measured_row, report_rows, warm_up
from bench.seed import Shape, device_id
from bench.servers import serve
from tradecast.kit import signing

FILL_PATH = "/api/v1/exec/fill"
FULL = Shape(
    users=2_000,
    signals=10_000,
    open_signals=20,
    delivered_per_device=20,
    settled_per_device=0,
    referrals=True,
    history_per_device=10,
)
SMOKE = Shape(
    users=40,
    signals=200,
    open_signals=5,
    delivered_per_device=5,
    settled_per_device=0,
    referrals=True,
    history_per_device=3,
)


def signal_id(shape: Shape, n: int) -> str:
    import hashlib
    import uuid

    return str(uuid.UUID(hashlib.md5(f"signal{n}".encode()).hexdigest()))  # noqa: S324


def presign(shape: Shape, count: int, path: Path) -> None:
    stamp = int(time.time())
    run = os.urandom(4).hex()
    first_open = shape.signals - shape.open_signals + 1
    with path.open("w") as out:
        for i in range(count):
            device = device_id(1 + i % shape.devices)
            signal = signal_id(
                shape, first_open + (i // shape.devices) % shape.delivered_per_device
            )
            body = json.dumps(
                {
                    "report_id": f"r{run}{i}",
                    "signal_id": signal,
                    "fill_price": "1.10005",
                    "fill_size": "0.01",
                }
            )
            headers = signing.sign_request(
                key_id=device, secret=device_secret(device), method="POST", path=FILL_PATH,
                body=body.encode(), timestamp=stamp, nonce=f"ingest{run}{i:012d}",
            )  # fmt: skip
            headers["Content-Type"] = "application/json"
            joined = "|".join(f"{k}:{v}" for k, v in headers.items())
            out.write(f"POST\t{FILL_PATH}\t{joined}\t{body}\n")


def measure(url: str, shape: Shape, seconds: int, connections: int, scratch: Path) -> wrk.Result:
    requests = scratch / "fills.tsv"
    presign(shape, max(20_000, seconds * 6_000), requests)
    return wrk.run(url, requests, seconds=seconds, connections=connections)


def run(args: argparse.Namespace) -> list[Row]:
    shape = SMOKE if args.smoke else FULL
    if args.history is not None:
        shape = replace(shape, history_per_device=args.history)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for workers in args.workers:
            dsn = asyncio.run(prepare("tradecast_bench_ingest", shape))
            for name, factory, env in (
                ("bare FastAPI endpoint", "bench.baseline_app:create_app", None),
                ("tradecast fill report", "tradecast.main:create_app", server_env(dsn)),
            ):
                with serve(factory, workers=workers, env=env) as server:
                    # A device reports a fill for a signal it polled moments before:
                    # every device polls once first, as in the poll benchmark.
                    warm_up(server.url, shape, args.connections, scratch)
                    rows.append(measured_row(workers, name, server, measure, shape, args, scratch))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--history",
        type=int,
        help="past fills per device (default 10: each affiliate's 30-day volume spans "
        "950 commissions)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.workers = 2, [1]
    if not wrk.available():
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    rows = run(args)
    report_rows("fill ingest", rows, args, "PostgreSQL, trade + commission + audit per fill")


if __name__ == "__main__":
    main()
