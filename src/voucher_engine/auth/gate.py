"""One token look-up for a burst of requests with the same token, and never an answer older than the request.

Claims come in bursts from a government's own app, all with one token. A per-worker cache of successful look-ups
would save the database a query per claim, but it would also keep a revoked token working on that worker until the
entry expired. Instead, requests that carry the same token share one look-up: a request that arrives while a
look-up is in flight waits for the *next* one, which starts only after the one in flight ends, so the answer a
request gets always comes from a query that began after it arrived. A token revoked (and committed) before a
request was sent is therefore refused, on every worker, with at most one look-up in flight per token and worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Slot(Generic[T]):
    running: asyncio.Future[T] | None = None
    waiting: asyncio.Future[T] | None = None


def _retrieve(future: asyncio.Future) -> None:
    # A look-up whose every waiter went away must not log "exception was never retrieved".
    if not future.cancelled():
        future.exception()


@dataclass(slots=True)
class Coalescer(Generic[T]):
    """Runs `lookup(key)` for callers of the same key, one at a time, each caller served by a run started after
    it asked."""

    slots: dict[Hashable, _Slot[T]] = field(default_factory=dict)
    tasks: set[asyncio.Task] = field(default_factory=set)

    async def run(self, key: Hashable, lookup: Callable[[], Awaitable[T]]) -> T:
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = _Slot()
        future = slot.waiting
        if future is None:
            future = slot.waiting = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
            if slot.running is None:
                self._start(key, slot, lookup)
        # Shielded: one caller going away must not cancel the look-up the others wait for.
        return await asyncio.shield(future)

    def _start(self, key: Hashable, slot: _Slot[T], lookup: Callable[[], Awaitable[T]]) -> None:
        future, slot.waiting = slot.waiting, None
        assert future is not None
        slot.running = future
        task = asyncio.create_task(self._lookup(key, slot, future, lookup))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _lookup(
        self, key: Hashable, slot: _Slot[T], future: asyncio.Future[T], lookup: Callable[[], Awaitable[T]]
    ) -> None:
        try:
            result = await lookup()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter hears of it
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            slot.running = None
            if slot.waiting is not None:
                self._start(key, slot, lookup)
            elif self.slots.get(key) is slot:
                del self.slots[key]
