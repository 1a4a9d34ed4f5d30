"""The app's own CPU per request: the poll and the fill report driven in process
through ASGI (no HTTP server, no sockets, no load generator on the cores),
against the bare FastAPI endpoints driven the same way in the same run.

    python -m bench.inprocess [--requests 20000] [--tasks 32] [--rounds 2] [--paths poll fill] [--smoke]

The HTTP benchmarks (``bench.poll``, ``bench.ingest``) measure what a client
sees, and on two shared cores their rates move by a quarter between identical
runs; a change to the app's own work of a few percent is lost in that. Here
one process runs the app, ``--tasks`` coroutines send it the same correctly
signed requests as the HTTP benchmarks (each with its own nonce, on the same
seeded databases, after every device has polled once), and the figures are
the process's CPU time and PostgreSQL's per request. The background jobs are
off, so that a job's run does not land in one round and not the other.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp as App

from bench import cpu, ingest, poll
from bench.fixtures import prepare, server_env
from bench.seed import Shape


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class Round:
    path: str
    name: str
    requests: int
    failed: int
    app_cpu_s: float
    postgres_cpu_s: float
    wall_s: float

    def per_request_ms(self, seconds: float) -> float:
        return seconds / self.requests * 1000


def read_requests(file: Path) -> list[Request]:
    """The pre-signed requests the HTTP benchmarks give wrk (``bench.wrk``'s format)."""
    requests = []
    for line in file.read_text().splitlines():
        method, path, joined, body = line.split("\t", 3)
        headers = []
        for pair in joined.split("|"):
            name, value = pair.split(":", 1)
            headers.append((name.lower().encode(), value.encode()))
        path, _, query = path.partition("?")
        requests.append(Request(method, path, query.encode(), headers, body.encode()))
    return requests


async def _call(app: App, request: Request) -> int:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *request.headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await asyncio.get_running_loop().create_future()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app: App, requests: list[Request], tasks: int) -> int:
    """Send every request, ``tasks`` at a time; how many were not answered 2xx."""
    pending: Iterator[Request] = iter(requests)
    failed = 0

    async def sender() -> None:
        nonlocal failed
        for request in pending:
            if not 200 <= await _call(app, request) < 300:
                failed += 1

    await asyncio.gather(*(sender() for _ in range(tasks)))
    return failed


async def _rounds(
    path: str, factory: Callable[[], App], name: str, files: tuple[Path, Path], args: Any
) -> list[Round]:
    warm_up_file, measured_file = files
    rounds = []
    # The app started and stopped as a server does; ``manager.app`` hands each
    # request the state its lifespan set up.
    async with LifespanManager(factory(), startup_timeout=60, shutdown_timeout=60) as manager:
        app = manager.app
        # Every device polls once, as in the HTTP benchmarks.
        await drive(app, read_requests(warm_up_file), args.tasks)
        measured = read_requests(measured_file)
        size = len(measured) // args.rounds
        for n in range(args.rounds):
            share = measured[n * size : (n + 1) * size]
            postgres = cpu.postgres_pids()
            before_pg = {pid: cpu.cpu_seconds(pid) for pid in postgres}
            began_cpu, began = time.process_time(), time.perf_counter()
            failed = await drive(app, share, args.tasks)
            app_cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began
            postgres_cpu = sum(
                cpu.cpu_seconds(pid) - before_pg.get(pid, 0.0) for pid in cpu.postgres_pids()
            )
            rounds.append(Round(path, name, len(share), failed, app_cpu, postgres_cpu, wall))
    return rounds


def _tradecast_app() -> App:
    from tradecast.config import Settings
    from tradecast.main import create_app

    # Settings read afresh: each path has its own database.
    return create_app(Settings())


def _bare_app() -> App:
    from bench.baseline_app import create_app

    return create_app()


PRESIGN: dict[str, tuple[str, Shape, Shape, Callable[[Shape, int, Path], None]]] = {
    "poll": ("tradecast_bench_poll", poll.FULL, poll.SMOKE, poll.presign),
    "fill": ("tradecast_bench_ingest", ingest.FULL, ingest.SMOKE, ingest.presign),
}


@contextmanager
def _stderr_to(file: Path) -> Iterator[None]:
    """The app's log lines to a file, as ``bench.servers`` keeps a server's; the
    app's logging set-up undone afterwards, so that the benchmark's own work
    (the next database's migrations) is not logged as the app's."""
    sys.stderr.flush()
    saved = os.dup(2)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with file.open("ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def run(args: argparse.Namespace) -> list[Round]:
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for path in args.paths:
            database, full, smoke, presign = PRESIGN[path]
            shape = smoke if args.smoke else full
            dsn = asyncio.run(prepare(database, shape))
            os.environ.update(server_env(dsn, TRADECAST_BACKGROUND_JOBS_ENABLED="false"))
            for name, factory in (
                ("bare FastAPI endpoint", _bare_app),
                (f"tradecast {path}", _tradecast_app),
            ):
                warm_up_file, measured_file = scratch / "warm-up.tsv", scratch / "measured.tsv"
                poll.presign(shape, shape.devices, warm_up_file)
                presign(shape, args.requests, measured_file)
                files = (warm_up_file, measured_file)
                with _stderr_to(scratch / "app.log"):
                    rounds += asyncio.run(_rounds(path, factory, name, files, args))
    return rounds


def report(rounds: list[Round], args: argparse.Namespace) -> None:
    print(
        f"\nin process: the app driven through ASGI by {args.tasks} tasks, no HTTP server; "
        "CPU per request in ms (the app's process, PostgreSQL's)"
    )
    print(
        f"{'path':5} {'endpoint':24} {'requests':>8} {'non-2xx':>7} {'app CPU':>8} "
        f"{'PG CPU':>7} {'req/s':>7}  vs baseline (app CPU)"
    )
    # Each path's baseline: the mean of its bare endpoint's rounds.
    bare: dict[str, list[float]] = {}
    for row in rounds:
        if row.name.startswith("bare"):
            bare.setdefault(row.path, []).append(row.per_request_ms(row.app_cpu_s))
    baseline = {path: sum(figures) / len(figures) for path, figures in bare.items()}
    for row in rounds:
        app_ms = row.per_request_ms(row.app_cpu_s)
        ratio = app_ms / baseline[row.path] if baseline.get(row.path) else float("nan")
        print(
            f"{row.path:5} {row.name:24} {row.requests:8d} {row.failed:7d} {app_ms:8.3f} "
            f"{row.per_request_ms(row.postgres_cpu_s):7.3f} {row.requests / row.wall_s:7.0f}"
            f"  {ratio:.1f}×"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paths", nargs="+", choices=sorted(PRESIGN), default=["poll", "fill"])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.rounds = 400, 1
    report(run(args), args)


if __name__ == "__main__":
    main()
