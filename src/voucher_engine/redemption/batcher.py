"""A micro-batcher: concurrent requests share one database transaction and one commit.

Natural batching: when no batch is in flight, what is queued goes at once (no added latency at low load); while a
batch runs, arrivals accumulate and leave together as the next batch, up to `max_batch`. So the batch size adapts
to the load, each commit (the fsync that `synchronous_commit = on` requires) is shared by everyone in the batch, and
a request never waits longer than one batch's round trips for its turn.

One batch at a time per worker, run inside the batcher's own task: as a batch ends, the next one is taken from the
queue and its first statement sent in the same step of the event loop, before the answers of the batch just ended
are written (their handlers run while the next batch's first statement is in the database). Two batches in flight
were measured slower: half the batch size, so twice the per-statement cost in PostgreSQL, for no better use of the
machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("voucher_engine.redemption")

J = TypeVar("J")

MAX_BATCH = 256
MAX_QUEUE = 20_000


class Overloaded(Exception):
    """The queue is full: shed load rather than queue without bound."""


class MicroBatcher(Generic[J]):
    """Feeds queued jobs to `run_batch(jobs)`, which must settle every job's future (success or error)."""

    def __init__(
        self, run_batch: Callable[[list[J]], Awaitable[None]], *, max_batch: int = MAX_BATCH, max_queue: int = MAX_QUEUE
    ):
        assert 1 <= max_batch <= 10_000
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: asyncio.Queue[J] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task | None = None
        self._waiting = False  # the task waits for work (not in a batch)
        self._stopping = False
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        """Let the batch in flight finish (its jobs are answered), then stop."""
        if self._task is not None:
            self._stopping = True
            if self._waiting:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def submit(self, job: J) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded() from None

    async def _loop(self) -> None:
        while not self._stopping:
            self._waiting = True
            try:
                first = await self._queue.get()  # no wait when jobs are queued: the next batch starts at once
            finally:
                self._waiting = False
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._run(batch)

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
