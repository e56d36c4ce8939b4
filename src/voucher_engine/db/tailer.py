"""The loop of a ledger tailer: a room that follows the sequenced ledger by a cursor of its own (the stats poller,
the risk window detector).

A round takes at most `limit` transactions after the room's cursor and moves it, in a database transaction of its
own (the room's `one_round`, which answers how many it took); `catch_up` runs rounds, each committed, until one comes
back short, so a backlog is worked off at the round's own speed; `run_forever` catches up, sleeps, and does it
again, logging a failed round and trying again after the sleep (a database restart, a bad round), for as long as
`keep_going()` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# One round in the caller's transaction: (connection, limit) -> transactions taken.
Round = Callable[[AsyncConnection, int], Awaitable[int]]


async def catch_up(engine: AsyncEngine, one_round: Round, limit: int) -> int:
    """Rounds, each committed, until one comes back short; answers how many transactions were taken."""
    total = 0
    while True:
        async with engine.begin() as conn:
            taken = await one_round(conn, limit)
        total += taken
        if taken < limit:
            return total


def always() -> bool:
    return True


async def run_forever(
    engine: AsyncEngine,
    one_round: Round,
    limit: int,
    interval_s: Callable[[], float],
    log: logging.Logger,
    what: str,
    keep_going: Callable[[], bool] = always,
) -> None:
    """Catch up, sleep `interval_s()`, again, while `keep_going()`; a failed catch-up is logged as `what` failed."""
    while keep_going():
        try:
            await catch_up(engine, one_round, limit)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s failed; will retry", what, exc_info=True)
        await asyncio.sleep(interval_s())
