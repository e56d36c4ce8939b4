"""Where the dispatcher runs: a process of its own under `serve`, else a loop in each worker.

Under `serve` the dispatcher's HTTP work stays off the API workers' event loops and, niced, behind them for the CPU:
a burst of redemptions is answered first, and its events follow as soon as there is room (the figures are in
docs/operations.md). The workers keep a standby loop that runs rounds only when the dispatcher process's heartbeat
(webhook_cursor.heartbeat_at) is older than STALE_AFTER_S, so events keep flowing if that process dies. Leases make
every arrangement safe (dispatcher.py).
"""

from __future__ import annotations

import asyncio
import logging
import os

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.config import Settings
from voucher_engine.db.raw import driver
from voucher_engine.webhooks import dispatcher
from voucher_engine.webhooks import repository as sql

log = logging.getLogger("voucher_engine.webhooks")

STANDBY_INTERVAL_S = 5.0
STALE_AFTER_S = 15.0
PRUNE_EVERY_S = 3600.0
DISPATCHER_NICENESS = 10
APPLICATION_NAME = "voucher-engine webhooks"


def make(engine: AsyncEngine, settings: Settings, server_secret: bytes, metrics=None) -> dispatcher.Dispatcher:
    config = dispatcher.Config(
        retry_base_s=settings.webhook_retry_base_s,
        timeout_s=settings.webhook_timeout_s,
        give_up_after_s=settings.webhook_give_up_s,
        max_pending_per_subscription=settings.webhook_max_pending,
    )
    return dispatcher.Dispatcher(engine, server_secret, config, metrics=metrics)


async def standby(engine: AsyncEngine, settings: Settings, server_secret: bytes, metrics=None) -> None:
    """A worker's loop while a dispatcher process runs: act only when that process has gone quiet."""
    active = make(engine, settings, server_secret, metrics)
    try:
        while True:
            await asyncio.sleep(STANDBY_INTERVAL_S)
            try:
                async with engine.connect() as conn:
                    beat = await sql.heartbeat(await driver(conn))
                if beat is None or (clock.real_now() - beat).total_seconds() > STALE_AFTER_S:
                    log.warning("the webhook dispatcher process is silent; this worker dispatches for a while")
                    await active.drain(deadline_s=STANDBY_INTERVAL_S * 2)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("webhook standby round failed", exc_info=True)
    finally:
        await active.close()


async def in_worker(engine: AsyncEngine, settings: Settings, server_secret: bytes, metrics=None) -> None:
    active = make(engine, settings, server_secret, metrics)
    pruner = asyncio.create_task(_prune_forever(engine))
    try:
        await active.run_forever()
    finally:
        pruner.cancel()


async def _prune_forever(engine: AsyncEngine) -> None:
    while True:
        await asyncio.sleep(PRUNE_EVERY_S)
        try:
            await dispatcher.prune(engine)
        except Exception:
            log.warning("webhook pruning failed", exc_info=True)


def run_process(settings: Settings) -> None:
    """The dispatcher process's entry point (a `multiprocessing` target): runs until its parent is gone."""
    from voucher_engine.observability import logs, metrics

    logs.configure(settings, process="webhooks")
    os.nice(DISPATCHER_NICENESS)
    asyncio.run(_serve(settings, os.getppid(), metrics.Metrics.get()))


async def _serve(settings: Settings, parent_pid: int, metrics) -> None:
    from voucher_engine.db.engine import create_engine
    from voucher_engine.db.niceness import lower_backends
    from voucher_engine.secrets_store import load_server_secret

    assert settings.database_url is not None, "serve sets DATABASE_URL before starting this process"
    engine = create_engine(settings.database_url, pool_size=3, application_name=APPLICATION_NAME)
    lower_backends(engine, settings.database_url, DISPATCHER_NICENESS)  # its backends behind the tills' too
    main = asyncio.create_task(
        in_worker(engine, settings, load_server_secret(settings.resolved_server_secret_path), metrics)
    )
    try:
        while not main.done():
            if os.getppid() != parent_pid:  # the service was killed without stopping us
                break
            await asyncio.sleep(1.0)
    finally:
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
        await engine.dispose()
