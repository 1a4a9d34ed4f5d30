"""Start servers as real processes, the way they run in production."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tradecast.cli import LISTEN_BACKLOG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def serve(
    factory: str,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/healthz",
) -> Iterator[Server]:
    """Run ``uvicorn --factory`` with ``workers`` processes until the block ends."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        # As `tradecast serve` listens: a fleet connecting at once queues in the kernel.
        "--backlog",
        str(LISTEN_BACKLOG),
        # As `tradecast serve` runs it: the app resolves client addresses itself
        # (TRADECAST_TRUSTED_PROXIES), so uvicorn's proxy-header rewriting is off.
        "--no-proxy-headers",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + ready_path, process)
        yield Server(url=url, pid=process.pid)
    except RuntimeError:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-4000:])
        raise
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")
