"""The dispatcher: fans events out to subscriptions, then sends, signs, retries and gives up.

Any number of dispatchers may run at once (every worker in tests and scripts; under `serve` a process of its own,
background.py), none sending one attempt twice:
- fan-out is one database transaction holding the cursor row (`FOR UPDATE SKIP LOCKED`: a second dispatcher skips
  the round instead of waiting): it reads the ledger past the cursor and takes the outbox's rows, writes one delivery
  per matching subscription, and moves the cursor. A crash before its commit leaves everything to the next round.
- sending leases deliveries (`FOR UPDATE SKIP LOCKED`, then attempts + 1 and next_at = now + LEASE_S, committed
  before the request goes out). The lease outlasts the request's timeout, so another dispatcher takes the row only if
  this one died; a result is applied only while its attempt is the row's latest.
At least once, then: a dispatcher that dies after the receiver answered but before recording it sends again after
the lease. Receivers deduplicate by event id.

A slow or dead receiver costs a sender slot (MAX_IN_FLIGHT_PER_SUBSCRIPTION of MAX_IN_FLIGHT at most), never a
redemption: nothing on the money path waits for any of this.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import __version__, clock
from voucher_engine.db.raw import driver
from voucher_engine.webhooks import repository as sql
from voucher_engine.webhooks import service, signing
from voucher_engine.webhooks.events import LEDGER_EVENTS

log = logging.getLogger("voucher_engine.webhooks")

MAX_LEDGER_PER_ROUND = 2000  # ledger transactions read per fan-out round
MAX_OUTBOX_PER_ROUND = 1000
MAX_IN_FLIGHT = 128  # requests at once, per dispatcher
# So that one slow receiver cannot hold every sender. (128 per subscription was tried on the shared machine: more of
# the requests outran the 10 s timeout there and were sent again; 32 gave no retries in the same kind of run.)
MAX_IN_FLIGHT_PER_SUBSCRIPTION = 32
MAX_RETRY_DELAY_S = 3600.0  # API.md: doubling, capped at an hour
LEASE_MARGIN_S = 20.0  # lease = timeout + this: a live sender always finishes first
HEARTBEAT_EVERY_S = 2.0
MAX_RESPONSE_BYTES = 64 * 1024  # read of a receiver's answer body; the status is what counts
MAX_ERROR_CHARS = 200


@dataclass(slots=True)
class Config:
    retry_base_s: float = 10.0
    timeout_s: float = 10.0
    give_up_after_s: float = 86400.0
    max_pending_per_subscription: int = 1_000_000
    poll_interval_s: float = 0.25


@dataclass(slots=True)
class Claimed:
    id: int
    subscription_id: str
    event_id: str
    type: str
    body: bytes
    attempt: int
    created_at: datetime
    url: str


@dataclass(slots=True)
class Result:
    claimed: Claimed
    status_code: int | None
    error: str | None
    at: datetime
    outcome: str  # delivered | retrying | failed
    next_at: datetime | None = None


def retry_delay_s(attempt: int, base_s: float) -> float:
    """The wait after failed attempt `attempt` (1-based): base, 2 base, 4 base, ... capped at an hour."""
    return min(base_s * (2 ** min(attempt - 1, 30)), MAX_RETRY_DELAY_S)


def event_body(event_id: str, type_: str, created_at: Any, data: Any) -> bytes:
    return orjson.dumps({"id": event_id, "type": type_, "created_at": created_at, "data": data})


def _ledger_event(row: Any) -> tuple[str, str, str | None, bytes]:
    """(event id, type, issuer id, body) of a ledger transaction the dispatcher read."""
    type_ = LEDGER_EVENTS[row["kind"]]
    event_id = service.ledger_event_id(row["tx_id"])
    if row["kind"] == "redeem" and row["redemption_id"] is not None:
        data: dict[str, Any] = {
            "id": row["redemption_id"],
            "status": "settled",
            "campaign_id": row["campaign_id"],
            "voucher_id": row["voucher_id"],
            "merchant_id": row["merchant_id"],
            "pos_txn_id": row["pos_txn_id"],
            "order_amount_fen": row["order_amount_fen"],
            "subsidy_fen": row["subsidy_fen"],
            "payable_fen": row["payable_fen"],
            "ledger_tx_id": row["tx_id"],
            "settled_at": row["settled_at"],
        }
    else:  # a kind without a row of its own to show: the ledger transaction's references and amount
        refs = orjson.loads(row["refs"]) if isinstance(row["refs"], (str, bytes)) else dict(row["refs"])
        amount = sum(a for a in row["amounts_fen"] if a > 0)
        data = {**refs, "ledger_tx_id": row["tx_id"], "kind": row["kind"], "amount_fen": amount, "at": row["at"]}
    return event_id, type_, row["issuer_id"], event_body(event_id, type_, row["at"], data)


@dataclass
class Dispatcher:
    engine: AsyncEngine
    server_secret: bytes
    config: Config = field(default_factory=Config)
    _client: httpx.AsyncClient | None = None
    _secrets: dict[str, str] = field(default_factory=dict)
    _in_flight: dict[asyncio.Task, str] = field(default_factory=dict)
    _results: list[Result] = field(default_factory=list)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)
    _last_heartbeat: float = 0.0
    _next_fan_out: float = 0.0  # monotonic time; rounds woken by finished sends fan out only this often
    _cursor_was_busy: bool = False  # the last fan-out found another dispatcher fanning out
    metrics: Any = None  # an object with .webhook_delivery(type, outcome) (observability/metrics.py), or None

    # -- the loop --------------------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    busy = await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("webhook dispatch failed; will retry", exc_info=True)
                    await asyncio.sleep(1.0)
                    continue
                if not busy:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives
                    # as the event is set, and this loop then outlived its worker's shutdown (the suite hung on it).
                    try:
                        async with asyncio.timeout(self.config.poll_interval_s):
                            await self._progress.wait()
                    except TimeoutError:
                        pass
                self._progress.clear()
        finally:
            await self.close()

    async def step(self) -> bool:
        """One round: fan out, record finished attempts, start due ones. Answers whether there was work."""
        fanned = 0
        if time.monotonic() >= self._next_fan_out:
            fanned = await self.fan_out()
            # A full round may have left more behind it: the next round looks again at once.
            full = fanned >= MAX_OUTBOX_PER_ROUND
            self._next_fan_out = 0.0 if full else time.monotonic() + self.config.poll_interval_s
        finished = await self.finish()
        started = await self.start_due()
        return bool(fanned or finished or started)

    async def close(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def drain(self, *, deadline_s: float = 30.0) -> None:
        """Run rounds until nothing is due or in flight, or the deadline passes; either way every attempt this
        dispatcher started has ended and been recorded when it returns (a standby worker's turn, tests)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            self._next_fan_out = 0.0  # every round of a drain looks for new events
            busy = await self.step()
            if not busy and not self._in_flight and not self._cursor_was_busy:
                return
            if self._in_flight:
                await asyncio.wait(list(self._in_flight), timeout=0.05)
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=self.config.timeout_s + 1)
        await self.finish()

    # -- fan-out ---------------------------------------------------------------------------------------------

    async def fan_out(self) -> int:
        """Turn new ledger transactions and outbox rows into deliveries; answers how many events were read."""
        async with self.engine.begin() as conn:
            raw = await driver(conn)
            cursor = await sql.lock_cursor(raw)
            self._cursor_was_busy = cursor is None
            if cursor is None:
                return 0  # another dispatcher is fanning out
            now = clock.real_now()
            subscriptions = await sql.active_subscriptions(raw)
            wanted = {type_ for row in subscriptions for type_ in row["events"]}
            kinds = [kind for kind, type_ in LEDGER_EVENTS.items() if type_ in wanted]
            upto = min(await sql.ledger_top(raw), cursor + MAX_LEDGER_PER_ROUND)
            events: list[tuple[str, str, str | None, bytes]] = []
            if kinds and upto > cursor:
                events.extend(_ledger_event(row) for row in await sql.ledger_events(raw, cursor, upto, kinds))
            taken = await sql.take_outbox(raw, MAX_OUTBOX_PER_ROUND)
            events.extend(await self._outbox_events(raw, taken))
            if events and subscriptions:
                await self._write_deliveries(raw, subscriptions, events, now)
            beat = time.monotonic()
            if upto != cursor or beat - self._last_heartbeat >= HEARTBEAT_EVERY_S:
                await sql.move_cursor(raw, max(upto, cursor), now)
                self._last_heartbeat = beat
            return len(events)

    async def _outbox_events(self, raw: Any, taken: list) -> list[tuple[str, str, str | None, bytes]]:
        unknown = sorted({row["campaign_id"] for row in taken if row["issuer_id"] is None and row["campaign_id"]})
        issuers: dict[str, str] = {}
        if unknown:
            issuers = await sql.issuers_of_campaigns(raw, unknown)
        out = []
        for row in taken:
            data = orjson.loads(row["data"]) if isinstance(row["data"], (str, bytes)) else row["data"]
            issuer = row["issuer_id"] or issuers.get(row["campaign_id"] or "")
            out.append((row["id"], row["type"], issuer, event_body(row["id"], row["type"], row["created_at"], data)))
        return out

    async def _write_deliveries(self, raw: Any, subscriptions: list, events: list, now: datetime) -> None:
        columns: tuple[list, ...] = ([], [], [], [], [], [])
        room = {row["id"]: self.config.max_pending_per_subscription - row["pending"] for row in subscriptions}
        added: dict[str, int] = {}
        overflow: list[tuple[str, str, str]] = []
        for event_id, type_, issuer_id, body in events:
            for sub in subscriptions:
                if type_ not in sub["events"] or (sub["issuer_id"] is not None and sub["issuer_id"] != issuer_id):
                    continue
                full = room[sub["id"]] <= 0
                if full:
                    overflow.append((sub["id"], event_id, type_))
                else:
                    room[sub["id"]] -= 1
                    added[sub["id"]] = added.get(sub["id"], 0) + 1
                for column, value in zip(
                    columns, (sub["id"], event_id, type_, body, now, "failed" if full else "pending")
                ):
                    column.append(value)
        if not columns[0]:
            return
        await sql.insert_deliveries(raw, columns)
        if added:
            await sql.add_pending(raw, added)
        if overflow:
            # The bound of the outbox: a subscription whose receiver has fallen this far behind loses the newest
            # events, each logged as given up (attempt 0) and counted, rather than the queue growing without end.
            n = len(overflow)
            await sql.insert_attempts(
                raw,
                [s for s, _, _ in overflow],
                [e for _, e, _ in overflow],
                [t for _, _, t in overflow],
                [0] * n,
                [None] * n,
                [now] * n,
                ["failed"] * n,
                ["the subscription's queue is full"] * n,
            )
            for _, _, type_ in overflow:
                self._count(type_, "failed")
            log.warning("webhook queue full: %d events given up unsent", n)

    # -- sending ---------------------------------------------------------------------------------------------

    async def start_due(self) -> int:
        free = MAX_IN_FLIGHT - len(self._in_flight)
        if free <= 0:
            return 0
        per_subscription: dict[str, int] = {}
        for sub_id in self._in_flight.values():
            per_subscription[sub_id] = per_subscription.get(sub_id, 0) + 1
        full = [s for s, n in per_subscription.items() if n >= MAX_IN_FLIGHT_PER_SUBSCRIPTION]
        now = clock.real_now()
        lease_end = now + timedelta(seconds=self.config.timeout_s + LEASE_MARGIN_S)
        async with self.engine.begin() as conn:
            raw = await driver(conn)
            rows = await sql.claim_due(raw, now, MAX_IN_FLIGHT_PER_SUBSCRIPTION, free, lease_end, full)
        for row in rows:
            claimed = Claimed(
                id=row["id"],
                subscription_id=row["subscription_id"],
                event_id=row["event_id"],
                type=row["type"],
                body=bytes(row["body"]),
                attempt=row["attempts"],
                created_at=row["created_at"],
                url=row["url"],
            )
            task = asyncio.create_task(self._send(claimed))
            self._in_flight[task] = claimed.subscription_id
            task.add_done_callback(self._sent)
        return len(rows)

    def _sent(self, task: asyncio.Task) -> None:
        self._in_flight.pop(task, None)
        self._progress.set()

    def _secret(self, subscription_id: str) -> str:
        secret = self._secrets.get(subscription_id)
        if secret is None:
            secret = self._secrets[subscription_id] = signing.subscription_secret(self.server_secret, subscription_id)
        return secret

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout_s),
                limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
                follow_redirects=False,  # a redirect would take the signed body somewhere not checked
                trust_env=False,
            )
        return self._client

    async def _send(self, claimed: Claimed) -> None:
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "user-agent": f"voucher-engine-webhooks/{__version__}",
            "x-ve-event-id": claimed.event_id,
            "x-ve-timestamp": timestamp,
            "x-ve-signature": signing.signature(self._secret(claimed.subscription_id), timestamp, claimed.body),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.config.timeout_s):
                async with self.client().stream("POST", claimed.url, content=claimed.body, headers=headers) as answer:
                    status = answer.status_code
                    read = 0
                    async for chunk in answer.aiter_raw():
                        read += len(chunk)
                        if read > MAX_RESPONSE_BYTES:
                            break
        except (TimeoutError, httpx.TimeoutException):
            status, error = None, f"no answer within {self.config.timeout_s:g} s"
        except (httpx.HTTPError, OSError) as exc:
            if status is None:
                error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        at = clock.real_now()
        if status is not None and 200 <= status < 300:
            self._results.append(Result(claimed, status, None, at, "delivered"))
        elif (at - claimed.created_at).total_seconds() >= self.config.give_up_after_s:
            self._results.append(Result(claimed, status, error, at, "failed"))
        else:
            wait = timedelta(seconds=retry_delay_s(claimed.attempt, self.config.retry_base_s))
            self._results.append(Result(claimed, status, error, at, "retrying", at + wait))

    async def finish(self) -> int:
        """Record the attempts that ended since the last round, in one transaction."""
        if not self._results:
            return 0
        results, self._results = self._results, []
        delivered = [r for r in results if r.outcome == "delivered"]
        retrying = [r for r in results if r.outcome == "retrying"]
        failed = [r for r in results if r.outcome == "failed"]
        try:
            async with self.engine.begin() as conn:
                raw = await driver(conn)
                done: list[str] = []
                if delivered:
                    done.extend(
                        await sql.finish_delivered(
                            raw, [r.claimed.id for r in delivered], [r.claimed.attempt for r in delivered]
                        )
                    )
                if retrying:
                    await sql.finish_retry(
                        raw,
                        [r.claimed.id for r in retrying],
                        [r.claimed.attempt for r in retrying],
                        [r.next_at for r in retrying],
                        [r.status_code for r in retrying],
                    )
                if failed:
                    done.extend(
                        await sql.finish_failed(
                            raw,
                            [r.claimed.id for r in failed],
                            [r.claimed.attempt for r in failed],
                            [r.status_code for r in failed],
                        )
                    )
                if done:
                    counts: dict[str, int] = {}
                    for sub_id in done:
                        counts[sub_id] = counts.get(sub_id, 0) - 1
                    await sql.add_pending(raw, counts)
                await sql.insert_attempts(
                    raw,
                    [r.claimed.subscription_id for r in results],
                    [r.claimed.event_id for r in results],
                    [r.claimed.type for r in results],
                    [r.claimed.attempt for r in results],
                    [r.status_code for r in results],
                    [r.at for r in results],
                    [r.outcome for r in results],
                    [r.error for r in results],
                )
        except BaseException:
            self._results[:0] = results  # recorded next round (or, if this process dies, the lease runs out)
            raise
        for r in results:
            self._count(r.claimed.type, r.outcome)
        return len(results)

    def _count(self, type_: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_delivery(type_, outcome)


async def prune(engine: AsyncEngine, *, keep_days: int = 30, limit: int = 10_000) -> None:
    """Housekeeping: forget attempts and given-up deliveries older than `keep_days` (bounded per call)."""
    before = clock.real_now() - timedelta(days=keep_days)
    async with engine.begin() as conn:
        raw = await driver(conn)
        await sql.prune(raw, before, limit)
