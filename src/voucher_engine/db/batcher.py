"""The micro-batcher that claims and redemption share: concurrent requests share one database transaction and one
commit.

Natural batching: when no batch is in flight, what is queued goes at once (no added latency at low load); while a
batch runs, arrivals accumulate and leave together as the next batch, up to `max_batch`. So the batch size adapts
to the load, each commit (the fsync that `synchronous_commit = on` requires) is shared by everyone in the batch, and
a request never waits longer than one batch's round trips for its turn.

A gather window (`gather_s`, redemption only, `VE_BATCH_GATHER_MS`): natural batching alone leaves batches of one
or two jobs at moderate rates (a batch's round trips take a millisecond or two), and a batch's write has a fixed
cost in PostgreSQL of several hundred µs whatever its size, so at 500-1,000 redemptions/s that fixed cost, paid per
one or two jobs, is what fills the machine. When the jobs arrive close enough together that another is expected
within the window (the mean gap between arrivals, a moving average, is shorter than the window) and fewer than
`GATHER_ENOUGH` are queued, the batcher waits until the oldest queued job has waited the window, then takes the
batch. The window bounds how long a job waits for company, counted from its arrival: jobs that queued while the
previous batch ran have waited already, so the next batch leaves at once (a window added after every batch made each
batch's cycle a window longer, and every till's wait with it). A lone till (arrivals farther apart than the window)
never waits; under heavy load the queue is already long and nobody waits either.

With `max_inflight=1` (redemption) one batch runs at a time, inside the batcher's own task: as a batch ends, the
next one is taken from the queue and its first statement sent in the same step of the event loop, before the
answers of the batch just ended are written. Two redemption batches in flight were measured slower (half the batch
size, so twice the per-statement cost in PostgreSQL). Claims, whose batches touch disjoint stock shards, run up to
four at once.

The same promises for every user:
- a full queue is refused at once, with the same answer (429 `RATE_LIMITED`, retry in a second), never queued
  without bound behind a database that cannot keep up;
- a batch that raises is run again one job at a time, so one bad job (a NUL its text column cannot hold, a CHECK
  it breaks) fails alone and never its neighbours; a lone job's error is answered through `classify`;
- `run_batch` may hand jobs back (a claim whose stock is held by another batch for a moment): they go to the back
  of the queue and into a later batch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from voucher_engine.db.errors import is_database_unavailable, is_unstorable_input
from voucher_engine.errors import EngineError

log = logging.getLogger("voucher_engine.batcher")

MAX_BATCH = 256
MAX_QUEUE = 20_000
MAX_INFLIGHT = 16
MAX_GATHER_S = 0.02  # a window longer than this would spend a till's latency budget on waiting
GATHER_ENOUGH = 8  # queued jobs that already make a batch worth its fixed cost: no wait
GAP_WEIGHT = 0.125  # the moving average's weight of each new gap between arrivals
GAP_CAP_S = 1.0  # an idle second counts as one, so the average comes down within a few arrivals
FULL_DETAIL = "The service is at capacity; retry in a moment."


class Batchable(Protocol):
    """A job: whatever its kind, it is answered through its future."""

    future: asyncio.Future[Any]


J = TypeVar("J", bound=Batchable)


def request_error(exc: BaseException) -> BaseException:
    """The answer for a job whose database work raised `exc` when the job ran alone: the caller's unstorable text
    is a 422, a database gone away a 503; anything else is left as it is (a bug: answered 500 and logged)."""
    if isinstance(exc, EngineError):
        return exc
    if is_database_unavailable(exc):
        return EngineError("UNAVAILABLE", "The database is unreachable; try again shortly.")
    if is_unstorable_input(exc):
        return EngineError("VALIDATION_ERROR", "Text in the request must not contain NUL (U+0000) characters.")
    return exc


class MicroBatcher(Generic[J]):
    """Feeds queued jobs to `run_batch(jobs)`, which settles the future of every job it does not hand back, or
    raises (then each job runs again alone)."""

    def __init__(
        self,
        run_batch: Callable[[list[J]], Awaitable[Sequence[J] | None]],
        *,
        name: str,
        classify: Callable[[BaseException], BaseException] = request_error,
        max_batch: int = MAX_BATCH,
        max_queue: int = MAX_QUEUE,
        max_inflight: int = 1,
        gather_s: float = 0.0,
    ) -> None:
        if (
            not 1 <= max_batch <= 10_000
            or not 1 <= max_inflight <= MAX_INFLIGHT
            or max_queue < 1
            or not 0 <= gather_s <= MAX_GATHER_S
        ):
            raise ValueError(f"micro-batcher {name}: limits out of range")
        self.name = name
        self._run_batch = run_batch
        self._classify = classify
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._max_inflight = max_inflight
        self._gather_s = gather_s
        self._mean_gap_s = GAP_CAP_S
        self._last_arrival = 0.0
        self._oldest_arrival = 0.0  # of the jobs queued now (the gather window runs from it)
        self._queue: collections.deque[J] = collections.deque()
        self._ready = asyncio.Event()
        self._slots = asyncio.Semaphore(max_inflight)
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._waiting = False  # the loop waits for work or for a free slot, not inside a batch
        self._stopping = False
        self.batches = 0
        self.jobs = 0
        self.gathered = 0  # batches that waited out the gather window

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name=f"micro-batcher {self.name}")

    async def stop(self) -> None:
        """Let the batches in flight finish (their jobs are answered), refuse what is still queued, then stop."""
        if self._task is not None:
            self._stopping = True
            if self._waiting:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(EngineError("UNAVAILABLE", "The service is stopping; try again."))

    def submit(self, job: J) -> None:
        """Queue `job`; its future is answered when its batch has run. RATE_LIMITED at once when the queue is full."""
        if len(self._queue) >= self._max_queue:
            raise EngineError("RATE_LIMITED", FULL_DETAIL, retry_after_s=1)
        if self._gather_s:
            now = asyncio.get_running_loop().time()
            if not self._queue:
                self._oldest_arrival = now
            gap = min(now - self._last_arrival, GAP_CAP_S)
            self._mean_gap_s += GAP_WEIGHT * (gap - self._mean_gap_s)
            self._last_arrival = now
        self._queue.append(job)
        self._ready.set()

    def _worth_gathering(self) -> bool:
        return len(self._queue) < GATHER_ENOUGH and self._mean_gap_s < self._gather_s

    async def _loop(self) -> None:
        while not self._stopping:
            self._waiting = True
            try:
                while not self._queue:  # no wait when jobs are queued: the next batch starts at once
                    self._ready.clear()
                    await self._ready.wait()
                await self._slots.acquire()
                if self._gather_s and self._worth_gathering():
                    # Jobs left behind by a full batch count as fresh arrivals: the queue then holds GATHER_ENOUGH
                    # or more, and nobody waits.
                    wait_s = self._oldest_arrival + self._gather_s - asyncio.get_running_loop().time()
                    if wait_s > 0:
                        self.gathered += 1
                        await asyncio.sleep(wait_s)
            finally:
                self._waiting = False
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            if self._max_inflight == 1:
                await self._run(batch)
            else:
                task = asyncio.create_task(self._run(batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[J]) -> None:
        try:
            await self._attempt(batch)
        finally:
            self._slots.release()

    async def _attempt(self, batch: list[J]) -> None:
        self.batches += 1
        self.jobs += len(batch)
        try:
            again = await self._run_batch(batch)
        except Exception as exc:  # noqa: BLE001 - every job of the batch must still be answered
            if len(batch) == 1:
                self._fail(batch[0], exc)
                return
            log.info("%s: a batch of %d failed (%s); running its jobs one by one", self.name, len(batch), exc)
            for job in batch:
                if not job.future.done():
                    await self._attempt([job])
            return
        except BaseException:  # cancelled: tell every waiting job before going
            for job in batch:
                if not job.future.done():
                    job.future.cancel()
            raise
        if again:
            self._queue.extend(again)
            self._ready.set()

    def _fail(self, job: J, exc: BaseException) -> None:
        # An answer that is not an EngineError is a bug: it reaches the request's handler, which logs it with the
        # request and answers 500.
        if not job.future.done():
            job.future.set_exception(self._classify(exc))
