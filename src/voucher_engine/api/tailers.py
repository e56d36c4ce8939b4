"""The ledger's tailers — the stats poller and the risk window detector — in a process of their own under `serve`.

Each tails the sequenced ledger in passes (one pass at a time across processes, under an advisory lock) and does a
pass's Python work between its statements. In the API workers a pass shared the event loop with the tills: while it
ran, an answer that was ready waited (at 100 redemptions/s the service's p99 was 35-61 ms against the bare
baseline's 20, with its CPU per request mostly these loops). Here they wait for no one and hold no one; the workers,
told so through the environment (`VE_TAILERS=process`), keep a standby loop every
`config.TAILERS_STANDBY_INTERVAL_S` in case this process dies.
"""

from __future__ import annotations

import asyncio
import logging
import os

from voucher_engine.config import Settings

log = logging.getLogger("voucher_engine.tailers")
APPLICATION_NAME = "voucher-engine tailers"  # how its connections show in pg_stat_activity
TAILERS_NICENESS = 5  # behind the API workers for the CPU: a figure can be a second late, a till cannot


def run_process(settings: Settings) -> None:
    """The tailers' process entry point (a `multiprocessing` target): runs until its parent is gone."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     tailers process: %(message)s")
    os.nice(TAILERS_NICENESS)
    asyncio.run(_serve(settings, os.getppid()))


async def _serve(settings: Settings, parent_pid: int) -> None:
    from voucher_engine.db.engine import create_engine
    from voucher_engine.risk import detector
    from voucher_engine.stats import service as stats

    if settings.database_url is None:
        raise RuntimeError("the tailers' process needs DATABASE_URL (serve sets it before starting it)")
    engine = create_engine(settings.database_url, pool_size=2, application_name=APPLICATION_NAME)

    async def watch_parent() -> None:
        # The service killed without stopping us leaves nothing to tail for (as the ledger's process checks).
        while True:
            if os.getppid() != parent_pid:
                return
            await asyncio.sleep(1.0)

    loops = [asyncio.create_task(stats.run_forever(engine))]
    if settings.risk != "off":
        loops.append(asyncio.create_task(detector.run_forever(engine)))
    try:
        await watch_parent()
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await engine.dispose()
