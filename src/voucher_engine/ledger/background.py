"""The ledger's background work — sequencing and periodic checkpoints — in the workers or in a process of its own.

`serve` runs it in a process of its own (settings.ledger_sequencer = "process"): a round hashes a few hundred
transactions at once, and in an API worker that holds the worker's event loop for milliseconds while redemptions
wait behind it. The workers then keep only a slow standby loop, which finds the queue empty while the process
lives and takes over if it dies. A single process (tests, `create_app` in a script) runs it in its own loop.
The advisory lock of `sequencer` makes every arrangement safe: one round at a time, whoever runs it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.config import Settings
from voucher_engine.ledger import checkpoints, sequencer, service

log = logging.getLogger("voucher_engine.ledger")

CHECKPOINT_INTERVAL_S = float(os.environ.get("VE_LEDGER_CHECKPOINT_INTERVAL_S", "60"))
# The workers' loop while a ledger process runs: rare, so that its rounds (empty while the process lives) cost
# nothing, and frequent enough that a dead process leaves the lag at seconds.
STANDBY_INTERVAL_S = 2.0
APPLICATION_NAME = "voucher-engine ledger"  # how its connections show in pg_stat_activity
LEDGER_NICENESS = 5


def periodic_checkpoint(engine: AsyncEngine, key) -> Callable[[], Awaitable[None]]:
    """A hook for `sequencer.run_forever`: sign a checkpoint every CHECKPOINT_INTERVAL_S if the tree grew."""
    last = {"at": clock.real_now()}

    async def maybe_sign() -> None:
        now = clock.real_now()
        if (now - last["at"]).total_seconds() < CHECKPOINT_INTERVAL_S:
            return
        last["at"] = now
        async with engine.begin() as conn:
            latest = await service.get_checkpoint(conn)
            if await service.tree_size(conn) > (latest.tree_size if latest else 0):
                await service.make_checkpoint(conn, key)

    return maybe_sign


def worker_interval_s(settings: Settings) -> float:
    return STANDBY_INTERVAL_S if settings.ledger_sequencer == "process" else sequencer.POLL_INTERVAL_S


def run_process(settings: Settings) -> None:
    """The ledger process's entry point (a `multiprocessing` target): runs until its parent is gone."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     ledger process: %(message)s")
    # Behind the API workers for the CPU: its rounds can wait a few milliseconds, a till cannot.
    os.nice(LEDGER_NICENESS)
    asyncio.run(_serve(settings, os.getppid()))


async def _serve(settings: Settings, parent_pid: int) -> None:
    from voucher_engine.db.engine import create_engine
    from voucher_engine.db.niceness import lower_backends

    if settings.database_url is None:
        raise RuntimeError("the ledger process needs DATABASE_URL (serve sets it before starting it)")
    engine = create_engine(settings.database_url, pool_size=2, application_name=APPLICATION_NAME)
    # Its SQL (the sequence, the tree) is done by its backends: behind the tills' batches too (db/niceness.py).
    lower_backends(engine, settings.database_url, LEDGER_NICENESS)
    checkpoint = periodic_checkpoint(engine, checkpoints.load_signing_key(settings.resolved_signing_key_path))

    async def between_rounds() -> None:
        if os.getppid() != parent_pid:  # the service was killed without stopping us: nothing to sequence for
            raise SystemExit(0)
        await checkpoint()

    log.info("sequencing every %.2f s", sequencer.POLL_INTERVAL_S)
    try:
        await sequencer.run_forever(engine, between_rounds)
    finally:
        await engine.dispose()
