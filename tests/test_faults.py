"""Dependencies failing under load: a real server, a private PostgreSQL and Redis we may kill.

The PostgreSQL here is a throwaway instance (``initdb`` into a temporary
directory, its own port and socket), never the machine's shared cluster, which
other test runs use. What must hold (docs/DEPLOY.md, "When a dependency is down"):

- PostgreSQL down: requests that need it answer a 503 ``database_unavailable``
  problem with ``Retry-After`` quickly — no hang, no 500 — and the service
  answers 200 again by itself once the database is back.
- Redis down: signed requests fail closed with a 503 ``redis_unavailable``
  problem; bearer-token requests carry on; signed requests work again once
  Redis is back. (Redis unreachable from the start is in ``tests/test_sharedstate.py``.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import PG_ADMIN_DSN, _pg_url, _recreate_pg_database, make_settings
from tests.helpers import Api, LoggedIn
from tests.servers import Server, free_port, server_env, start_server
from tradecast.kit import signing

PG_BIN = Path(os.environ.get("TRADECAST_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
# A request must end well within this while a dependency is down: the pool waits
# at most 5 s for a connection, and a refused connect fails at once.
FAIL_FAST_S = 8.0


@dataclass
class Outcome:
    kind: str
    status: int
    code: str | None
    retry_after: str | None
    content_type: str
    elapsed: float


# --- a private PostgreSQL -------------------------------------------------------------------


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` in a temporary directory, as the ``postgres`` user when root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tradecast-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/tradecast"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.dir / "postgres.log"), "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        # "fast": the server ends every session at once, as a crash or failover would.
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


async def _create_database(port: int) -> None:
    connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    try:
        await connection.execute("CREATE DATABASE tradecast")
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("initdb refuses root and runuser is not available")
    postgres = PrivatePostgres()
    try:
        postgres.init()
        postgres.start()
    except (subprocess.CalledProcessError, LookupError, PermissionError) as exc:
        postgres.destroy()
        pytest.skip(f"cannot run a private PostgreSQL: {exc}")
    try:
        asyncio.run(_create_database(postgres.port))
        yield postgres
    finally:
        postgres.destroy()


# --- load -------------------------------------------------------------------------------------


@dataclass
class Caller:
    base_url: str
    user: LoggedIn
    device_id: str
    device_secret: str

    def me(self, client: httpx.Client) -> httpx.Response:
        return client.get("/api/v1/me", headers=self.user.headers)

    def poll(self, client: httpx.Client) -> httpx.Response:
        headers = signing.sign_request(
            key_id=self.device_id, secret=self.device_secret, method="GET", path="/api/v1/exec/poll"
        )
        return client.get("/api/v1/exec/poll", headers=headers)


def _measure(kind: str, call: Callable[[], httpx.Response]) -> Outcome:
    began = time.monotonic()
    response = call()
    code = None
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        code = response.json().get("code")
    return Outcome(
        kind,
        response.status_code,
        code,
        response.headers.get("retry-after"),
        response.headers.get("content-type", ""),
        time.monotonic() - began,
    )


class Load:
    """Workers calling the server in a loop until stopped; every outcome is kept."""

    def __init__(self, caller: Caller, workers: int = 6) -> None:
        self.caller = caller
        self.outcomes: list[Outcome] = []
        self.phase = "before"
        self.by_phase: dict[str, list[Outcome]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers)
        self._futures = [self._pool.submit(self._work, n) for n in range(workers)]

    def _work(self, n: int) -> None:
        kinds = ("me", "poll")
        with httpx.Client(base_url=self.caller.base_url, timeout=30) as client:
            i = n
            while not self._stop.is_set():
                kind = kinds[i % len(kinds)]
                i += 1
                call = getattr(self.caller, kind)
                with self._lock:
                    began = self.phase
                try:
                    outcome = _measure(kind, lambda call=call: call(client))
                except httpx.TransportError as exc:
                    outcome = Outcome(kind, 0, type(exc).__name__, None, "", 0.0)
                with self._lock:
                    # A request that spans a change of phase (sent while the service
                    # was down, answered just after it recovered) belongs to neither.
                    phase = began if began == self.phase else f"{began}->{self.phase}"
                    self.by_phase.setdefault(phase, []).append(outcome)
                time.sleep(0.02)

    def enter(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def stop(self) -> None:
        self._stop.set()
        for future in self._futures:
            future.result(timeout=60)
        self._pool.shutdown()


async def _caller(server: Server, settings_url: str, tmp: Path) -> Caller:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        api = Api(client, make_settings(settings_url, tmp))
        user = await api.user()
        created = await client.post(
            "/api/v1/devices", json={"device_name": "faults"}, headers=user.headers
        )
        assert created.status_code == 201, created.text
        device = created.json()
    return Caller(server.url, user, device["id"], device["secret"])


def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout_s, "the service did not recover"
        time.sleep(0.2)
    return time.monotonic() - began


# --- PostgreSQL restarted under load ------------------------------------------------------------


@pytest.mark.postgres_only
def test_postgres_restart_under_load_fails_fast_with_503_and_recovers(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    # Rate limits off: the load exceeds a device's 20 signed requests a second on purpose.
    env = server_env(private_postgres.url, tmp_path / "data", TRADECAST_RATE_LIMITS_ENABLED="false")
    server = start_server(env, tmp_path / "server.log")
    load: Load | None = None
    try:
        caller = asyncio.run(_caller(server, private_postgres.url, tmp_path))
        load = Load(caller)
        time.sleep(1.5)
        load.enter("down")
        private_postgres.stop()
        time.sleep(4)
        load.enter("restarting")
        private_postgres.start()

        def answers() -> bool:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                return caller.me(client).status_code == 200 and (
                    caller.poll(client).status_code == 200
                )

        recovered_in = _wait_until(answers, 30)
        load.enter("after")
        time.sleep(1.5)
    finally:
        if load is not None:
            load.stop()
        server.stop()
    assert load is not None
    phases = load.by_phase
    everything = [o for outcomes in phases.values() for o in outcomes]
    # Never a 500, never a dropped connection, never a hang: at worst a retryable 503.
    assert not [o for o in everything if o.status not in {200, 503}], everything
    assert max(o.elapsed for o in everything) < FAIL_FAST_S
    for outcome in everything:
        if outcome.status == 503:
            assert outcome.code == "database_unavailable", outcome
            assert outcome.content_type.startswith("application/problem+json")
            assert outcome.retry_after is not None
    assert {o.status for o in phases["before"]} == {200}
    down = phases["down"]
    assert sum(o.status == 503 for o in down) >= len(down) // 2, down
    assert {o.kind for o in down if o.status == 503} == {"me", "poll"}
    failed_after = [o for o in phases["after"] if o.status != 200]
    assert not failed_after, failed_after
    assert recovered_in < 30
    assert "Traceback" not in server.log.read_text(errors="replace")


# --- Redis killed under load --------------------------------------------------------------------


class PrivateRedis:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                import redis

                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except Exception:  # noqa: S110 - not up yet; retried until the deadline
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_redis_killed_under_load_refuses_signed_requests_and_recovers(
    database_url: str, tmp_path: Path
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    name = f"tradecast_faults_{os.getpid()}"
    if database_url.startswith("postgresql"):
        # A database of its own: the per-test fixtures empty the worker's database.
        url = _pg_url(PG_ADMIN_DSN, name)
        asyncio.run(_recreate_pg_database(name))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'faults.db'}"
    env = server_env(
        url,
        tmp_path / "data",
        TRADECAST_REDIS_URL=redis_server.url,
        # A killed Redis refuses connections at once; the timeout only has to outlast
        # a busy machine (with 0.5 s a starved test run saw a 503 after recovery).
        TRADECAST_REDIS_TIMEOUT_S="2",
        # Off, as above; the nonces still live in Redis, which is what fails closed.
        TRADECAST_RATE_LIMITS_ENABLED="false",
    )
    server = start_server(env, tmp_path / "server.log")
    load: Load | None = None
    try:
        caller = asyncio.run(_caller(server, url, tmp_path))
        load = Load(caller, workers=4)
        time.sleep(1.5)
        load.enter("down")
        redis_server.kill()
        time.sleep(3)
        load.enter("restarting")
        redis_server.start()

        def signed_works() -> bool:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                return caller.poll(client).status_code == 200

        _wait_until(signed_works, 30)
        load.enter("after")
        time.sleep(1.5)
    finally:
        if load is not None:
            load.stop()
        server.stop()
        redis_server.kill()
        if url.startswith("postgresql"):
            asyncio.run(_recreate_pg_database(name, create=False))
    assert load is not None
    phases = load.by_phase
    everything = [o for outcomes in phases.values() for o in outcomes]
    assert max(o.elapsed for o in everything) < FAIL_FAST_S
    assert {o.status for o in phases["before"]} == {200}
    down = phases["down"]
    # Bearer requests do not touch Redis; signed ones fail closed.
    assert {o.status for o in down if o.kind == "me"} == {200}
    polls = [o for o in down if o.kind == "poll"]
    assert polls
    assert all(o.status in {200, 503} for o in polls), polls
    refused = [o for o in polls if o.status == 503]
    assert len(refused) >= len(polls) // 2, polls
    assert {o.code for o in refused} == {"redis_unavailable"}
    assert all(o.retry_after for o in refused)
    failed_after = [o for o in phases["after"] if o.status != 200]
    assert not failed_after, failed_after
