"""A micro-batcher: concurrent requests share one database transaction and one commit.

Natural batching: when no batch is in flight, what is queued goes at once (no added latency at low load); while
`max_in_flight` batches are running, arrivals accumulate and leave together as the next batch, up to `max_batch`.
So the batch size adapts to the load, each commit (the fsync that `synchronous_commit = on` requires) is shared by
everyone in the batch, and a request never waits longer than one batch's round trips for its turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("voucher_engine.redemption")

J = TypeVar("J")

MAX_BATCH = 256
MAX_IN_FLIGHT = 1
MAX_QUEUE = 20_000


class Overloaded(Exception):
    """The queue is full: shed load rather than queue without bound."""


class MicroBatcher(Generic[J]):
    """Feeds queued jobs to `run_batch(jobs)`, which must settle every job's future (success or error)."""

    def __init__(self, run_batch: Callable[[list[J]], Awaitable[None]], *, max_batch: int = MAX_BATCH,
                 max_in_flight: int = MAX_IN_FLIGHT, max_queue: int = MAX_QUEUE):
        assert 1 <= max_batch <= 10_000 and 1 <= max_in_flight <= 64
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: asyncio.Queue[J] = asyncio.Queue(maxsize=max_queue)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._task: asyncio.Task | None = None
        self._in_flight: set[asyncio.Task] = set()
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    def submit(self, job: J) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded() from None

    async def _loop(self) -> None:
        while True:
            first = await self._queue.get()
            await self._slots.acquire()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            task = asyncio.create_task(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _run(self, batch: list[J]) -> None:
        try:
            self.batches += 1
            self.jobs += len(batch)
            await self._run_batch(batch)
        except Exception:  # noqa: BLE001 - run_batch settles its own futures; this is a last resort
            log.exception("a micro-batch failed outside its own error handling")
            for job in batch:
                future: Any = getattr(job, "future", None)
                if future is not None and not future.done():
                    future.set_exception(RuntimeError("batch failed"))
        finally:
            self._slots.release()
