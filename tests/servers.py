"""Real ``tradecast serve`` processes for tests that need more than the in-process app."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: cheap password hashing, no background jobs, and,
    as in ``make_settings``, no rate limits unless a test switches them on."""
    return {
        **os.environ,
        "TRADECAST_ENV": "test",
        "TRADECAST_DATABASE_URL": database_url,
        "TRADECAST_DATA_DIR": str(data_dir),
        "TRADECAST_SECRET_KEY": "test-secret-key-" + "k" * 32,
        "TRADECAST_PASSWORD_HASH_TIME_COST": "1",
        "TRADECAST_PASSWORD_HASH_MEMORY_KIB": "8192",
        "TRADECAST_BACKGROUND_JOBS_ENABLED": "false",
        "TRADECAST_RATE_LIMITS_ENABLED": "false",
        "TRADECAST_LOG_LEVEL": "WARNING",
        **extra,
    }


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch_server(env: dict[str, str], log: Path, *args: str) -> Server:
    """``python -m tradecast serve`` on a free port; see ``wait_until_ready``."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradecast", "serve", "--port", str(port), *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


# Generous: on a busy two-core machine importing and migrating can take a while.
START_TIMEOUT_S = 90.0


def wait_until_ready(*servers: Server, timeout_s: float = START_TIMEOUT_S) -> None:
    """Return once every server answers ``/readyz``; stop them all if one does not."""
    deadline = time.monotonic() + timeout_s
    waiting = list(servers)
    while waiting:
        server = waiting[0]
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                waiting.pop(0)
                continue
        except httpx.TransportError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            for each in servers:
                each.stop()
            raise RuntimeError(f"server did not come up:\n{server.log.read_text(errors='replace')}")
        time.sleep(0.1)


def start_server(env: dict[str, str], log: Path, *args: str) -> Server:
    server = launch_server(env, log, *args)
    wait_until_ready(server)
    return server
