"""The application factory and its lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from tradecast import sharedstate
from tradecast.affiliates.router import router as affiliates_router
from tradecast.audit.router import router as audit_router
from tradecast.boundaries import (
    BodyLimit,
    declare_shared_problems,
    refuse_nul_characters,
    require_json_body,
)
from tradecast.config import Settings, get_settings
from tradecast.db import Database
from tradecast.delivery.batch import DeliveryBatcher, LookBatcher
from tradecast.delivery.endpoint import PollRoute
from tradecast.delivery.fanout import RedisRelay
from tradecast.delivery.router import router as delivery_router
from tradecast.delivery.wakeups import WakeupHub
from tradecast.devices.router import router as devices_router
from tradecast.errors import install_error_handlers
from tradecast.executions.batch import FillBatcher
from tradecast.executions.endpoint import report_routes
from tradecast.executions.router import router as executions_router
from tradecast.health.router import router as health_router
from tradecast.jobs import Scheduler, maintenance_jobs, outbox_job, reconciliation_job
from tradecast.kit.jsonlog import configure_logging
from tradecast.observability import Metrics, RequestContextMiddleware
from tradecast.producers.router import router as producers_router
from tradecast.ratelimit import RateLimiter
from tradecast.reconciliation.router import router as reconciliation_router
from tradecast.signals.router import router as signals_router
from tradecast.signed.gate import NonceThenLimit, RedisGate
from tradecast.signed.keycache import KeyCache
from tradecast.signed.nonces import DatabaseNonceStore, RedisNonceStore
from tradecast.telegram.router import router as telegram_router
from tradecast.telegram.runtime import start_bot
from tradecast.users.router import router as users_router

# Allocations between two young collections while the app runs (CPython's default
# is 700). Reference counting frees nearly everything a request makes; the
# collector is only for cycles, which can wait this long.
YOUNG_GC_THRESHOLD = 10_000


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            driver_pool_size=settings.db_device_pool_size,
        )
        # With REDIS_URL, nonces, rate limits and wake-ups are shared by every process.
        redis = sharedstate.connect(settings) if settings.redis_url else None
        subscriber = sharedstate.subscriber(settings) if settings.redis_url else None
        app.state.nonces = (
            RedisNonceStore(redis, settings.redis_prefix)
            if redis is not None
            else DatabaseNonceStore(app.state.db)
        )
        app.state.rate_limiter = RateLimiter(settings, redis)
        app.state.signed_gate = (
            RedisGate(
                redis,
                settings.redis_prefix,
                nonce_ttl_s=settings.nonce_ttl_s,
                rate_limits_enabled=settings.rate_limits_enabled,
            )
            if redis is not None
            else NonceThenLimit(app.state.nonces, app.state.rate_limiter, settings.nonce_ttl_s)
        )
        app.state.wakeups = WakeupHub()
        app.state.delivery_batcher = DeliveryBatcher(app.state.db)
        # PostgreSQL: the polls' own looks answered together too (delivery/batch.py).
        app.state.look_batcher = None if app.state.db.is_sqlite else LookBatcher(app.state.db)
        # PostgreSQL: fills recorded in batches. SQLite takes one writer at a time,
        # and each fill is recorded alone.
        app.state.fill_batcher = (
            None
            if app.state.db.is_sqlite
            else FillBatcher(app.state.db, settings, app.state.metrics)
        )
        app.state.device_keys = KeyCache(settings.device_key_cache_ttl_s)
        relay = (
            RedisRelay(
                redis,
                sharedstate.key(settings, "notifications"),
                [app.state.wakeups, app.state.device_keys],
                subscriber=subscriber,
            )
            if redis is not None
            else None
        )
        app.state.outbox_handlers = {}
        # With TELEGRAM_BOT_TOKEN: the webhook's bot, and its notifications as outbox handlers.
        app.state.telegram = start_bot(settings, app.state.outbox_handlers)
        app.state.scheduler = Scheduler(
            [
                *maintenance_jobs(app.state.db, app.state.nonces),
                reconciliation_job(app.state.db, settings),
                outbox_job(app.state.db, app.state.outbox_handlers),
            ]
        )
        if settings.background_jobs_enabled:
            app.state.scheduler.start()
        if relay is not None:
            relay.start()
        # Everything built so far lives as long as the app: out of the collector's
        # sight, a full collection no longer walks it, and every request in flight
        # waits for less. Young collections run every YOUNG_GC_THRESHOLD
        # allocations instead of 700, so thousands of held long polls are not walked
        # again and again, nor in the middle of a wake-up (docs/PERFORMANCE.md).
        # Both are given back when the app stops.
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(YOUNG_GC_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            if relay is not None:
                await relay.stop()
            await app.state.scheduler.stop()
            await app.state.delivery_batcher.stop()
            if app.state.look_batcher is not None:
                await app.state.look_batcher.stop()
            if app.state.fill_batcher is not None:
                await app.state.fill_batcher.stop()
            if app.state.telegram is not None:
                await app.state.telegram.close()
            if redis is not None:
                await redis.aclose()
            if subscriber is not None:
                await subscriber.aclose()
            await app.state.db.dispose()

    app = FastAPI(
        title="tradecast",
        version="0.1.0",
        summary="Trading signals to subscribers' terminals, exactly once, with affiliates.",
        lifespan=lifespan,
        dependencies=[Depends(require_json_body), Depends(refuse_nul_characters)],
        # tradecast's metrics are Prometheus's and its logs JSON lines (§9). FastAPI's
        # own OpenTelemetry instrumentation, on by default, asks OpenTelemetry's
        # global providers (three environment lookups) on every request to learn
        # that none is set up: off, the devices' requests skip that.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.secretbox = settings.secretbox()
    install_error_handlers(app)
    declare_shared_problems(app)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        trusted_proxies=settings.trusted_proxies,
    )
    # Routes are matched in order: the devices' endpoints, called all day, come first
    # (ahead of the documentation's, which FastAPI put in), the poll and the reports
    # as plain ASGI routes ahead of their OpenAPI declarations.
    app.router.routes[0:0] = [PollRoute(), *report_routes()]
    app.include_router(delivery_router)
    app.include_router(executions_router)
    app.include_router(health_router)
    app.include_router(users_router)
    app.include_router(audit_router)
    app.include_router(devices_router)
    app.include_router(reconciliation_router)
    app.include_router(producers_router)
    app.include_router(signals_router)
    app.include_router(affiliates_router)
    app.include_router(telegram_router)
    return app
