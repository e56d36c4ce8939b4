"""SQL of the webhooks room. The dispatcher's statements are set-based (arrays in, `unnest` inside): one round trip
per step of a round, whatever the number of events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.webhooks import webhook_attempts, webhook_outbox, webhook_subscriptions


async def insert_subscription(conn: AsyncConnection, **values: Any) -> sa.Row:
    result = await conn.execute(sa.insert(webhook_subscriptions).values(**values).returning(webhook_subscriptions))
    return result.one()


async def list_subscriptions(
    conn: AsyncConnection, *, issuer_id: str | None, only_own: bool, after: str | None, limit: int
) -> list[sa.Row]:
    query = sa.select(webhook_subscriptions).where(webhook_subscriptions.c.deleted_at.is_(None))
    if only_own:
        query = query.where(webhook_subscriptions.c.issuer_id == issuer_id)
    if after is not None:
        query = query.where(webhook_subscriptions.c.id > after)
    return list((await conn.execute(query.order_by(webhook_subscriptions.c.id).limit(limit))).all())


async def get_subscription(conn: AsyncConnection, subscription_id: str) -> sa.Row | None:
    query = sa.select(webhook_subscriptions).where(
        webhook_subscriptions.c.id == subscription_id, webhook_subscriptions.c.deleted_at.is_(None)
    )
    return (await conn.execute(query)).one_or_none()


async def delete_subscription(conn: AsyncConnection, subscription_id: str, at: datetime) -> None:
    """Marks it deleted and drops what it still had queued (its attempts log stays readable to the operator)."""
    await conn.execute(
        sa.update(webhook_subscriptions)
        .where(webhook_subscriptions.c.id == subscription_id)
        .values(deleted_at=at, pending=0)
    )
    await conn.execute(sa.text("DELETE FROM webhook_deliveries WHERE subscription_id = :s"), {"s": subscription_id})


async def list_attempts(conn: AsyncConnection, subscription_id: str, *, before: int | None, limit: int) -> list[sa.Row]:
    """Newest first."""
    query = sa.select(webhook_attempts).where(webhook_attempts.c.subscription_id == subscription_id)
    if before is not None:
        query = query.where(webhook_attempts.c.id < before)
    return list((await conn.execute(query.order_by(webhook_attempts.c.id.desc()).limit(limit))).all())


async def insert_outbox(
    conn: AsyncConnection, event_id: str, type_: str, campaign_id: str | None, issuer_id: str | None, at, data: Any
) -> None:
    """`data` must be plain JSON values (service.record makes it so)."""
    await conn.execute(
        sa.insert(webhook_outbox).values(
            id=event_id, type=type_, campaign_id=campaign_id, issuer_id=issuer_id, created_at=at, data=data
        )
    )


def outbox_item(first: int) -> str:
    """The outbox row's INSERT, its six arguments (outbox_args) numbered from `first`: alone (INSERT_OUTBOX), or as
    a WITH item of a cause written in one statement (a refund on its unlocked way), whose event must land in it."""
    numbers = [f"${first + i}" for i in range(6)]
    return (
        "INSERT INTO webhook_outbox (id, type, campaign_id, issuer_id, created_at, data)"
        f" VALUES ({', '.join(numbers[:5])}, {numbers[5]}::jsonb) RETURNING 1"
    )


INSERT_OUTBOX = outbox_item(1)


def outbox_args(event_id: str, type_: str, campaign_id: str | None, issuer_id: str | None, at, data: Any) -> tuple:
    """outbox_item's six arguments, in its order."""
    return (event_id, type_, campaign_id, issuer_id, at, orjson.dumps(data).decode())


def outbox_many_insert(first: int) -> str:
    """Many events of one type in one INSERT (a redemption batch's risk flags), its five arguments (outbox_many_args)
    numbered from `first`: alone (INSERT_OUTBOX_MANY) or as a WITH item. Their issuers are their campaigns'."""
    ids, type_, campaign_ids, at, data = (f"${first + i}" for i in range(5))
    return f"""INSERT INTO webhook_outbox (id, type, campaign_id, issuer_id, created_at, data)
SELECT e.id, {type_}, e.campaign_id, c.issuer_id, {at}, e.data::jsonb
FROM unnest({ids}::text[], {campaign_ids}::text[], {data}::text[]) WITH ORDINALITY AS e(id, campaign_id, data, n)
LEFT JOIN campaigns c ON c.id = e.campaign_id
ORDER BY e.n"""


INSERT_OUTBOX_MANY = outbox_many_insert(1)


def outbox_many_args(type_: str, events: list[tuple[str, str | None, Any]], at) -> tuple:
    """outbox_many_insert's five arguments, of events (event_id, campaign_id, data as plain JSON values)."""
    return (
        [event_id for event_id, _, _ in events],
        type_,
        [campaign_id for _, campaign_id, _ in events],
        at,
        [orjson.dumps(data).decode() for _, _, data in events],
    )


async def insert_outbox_many_raw(
    raw: asyncpg.Connection, type_: str, events: list[tuple[str, str | None, Any]], at
) -> None:
    """Events of one type (event_id, campaign_id, data), in the cause's transaction on its asyncpg connection, in
    one statement, in their order."""
    await raw.execute(INSERT_OUTBOX_MANY, *outbox_many_args(type_, events, at))


async def insert_outbox_raw(
    raw: asyncpg.Connection, event_id: str, type_: str, campaign_id: str | None, issuer_id: str | None, at, data: Any
) -> None:
    """insert_outbox on the asyncpg connection of a cause that runs raw (a redemption batch)."""
    await raw.execute(INSERT_OUTBOX, *outbox_args(event_id, type_, campaign_id, issuer_id, at, data))


# ---------------------------------------------------------------------------------------------------------------
# The dispatcher's statements (raw asyncpg).

LOCK_CURSOR = "SELECT ledger_seq FROM webhook_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED"
MOVE_CURSOR = "UPDATE webhook_cursor SET ledger_seq = $1, heartbeat_at = $2 WHERE id = 1"
HEARTBEAT = "SELECT heartbeat_at FROM webhook_cursor WHERE id = 1"
LEDGER_TOP = "SELECT coalesce(max(seq), 0) FROM ledger_sequence"
ACTIVE_SUBSCRIPTIONS = "SELECT id, events, issuer_id, pending FROM webhook_subscriptions WHERE deleted_at IS NULL"

# The ledger's transactions in (cursor, upto] of the kinds some subscription wants, with what their events say.
LEDGER_EVENTS = """
SELECT s.seq, t.id AS tx_id, t.kind, t.campaign_id, t.at, t.refs, t.amounts_fen, c.issuer_id,
       r.id AS redemption_id, r.merchant_id, r.pos_txn_id, r.voucher_id, r.order_amount_fen, r.subsidy_fen,
       r.payable_fen, r.settled_at
FROM ledger_sequence s
JOIN ledger_transactions t ON t.id = s.tx_id
LEFT JOIN campaigns c ON c.id = t.campaign_id
LEFT JOIN LATERAL (SELECT * FROM redemptions r
                   WHERE t.kind = 'redeem' AND r.campaign_id = t.campaign_id AND r.id = t.refs->>'redemption_id'
                   LIMIT 1) AS r ON true
WHERE s.seq > $1 AND s.seq <= $2 AND t.kind = ANY($3::text[])
ORDER BY s.seq
"""

TAKE_OUTBOX = """
DELETE FROM webhook_outbox WHERE id IN (
    SELECT id FROM webhook_outbox ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
) RETURNING id, type, campaign_id, issuer_id, created_at, data
"""

INSERT_DELIVERIES = """
INSERT INTO webhook_deliveries (subscription_id, event_id, type, body, created_at, next_at, state)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[], $5::timestamptz[],
                     $6::text[])
ON CONFLICT (subscription_id, event_id) DO NOTHING
"""

ADD_PENDING = """
UPDATE webhook_subscriptions s SET pending = greatest(0, s.pending + u.n)
FROM unnest($1::text[], $2::bigint[]) AS u(id, n) WHERE s.id = u.id
"""

# Due deliveries, at most `per_subscription` of each subscription (so that one slow receiver's backlog cannot take
# every sender), leased: the attempt is counted now and the row is not due again before the lease ends.
CLAIM_DUE = """
WITH due AS (
    SELECT d.id, s.url FROM webhook_subscriptions s
    CROSS JOIN LATERAL (SELECT x.id FROM webhook_deliveries x
                        WHERE x.subscription_id = s.id AND x.state = 'pending' AND x.next_at <= $1
                        ORDER BY x.next_at LIMIT $2 FOR UPDATE OF x SKIP LOCKED) AS d
    WHERE s.deleted_at IS NULL AND NOT (s.id = ANY($5::text[]))
    LIMIT $3
)
UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_at = $4
FROM due WHERE d.id = due.id
RETURNING d.id, d.subscription_id, d.event_id, d.type, d.body, d.attempts, d.created_at, due.url
"""

# Results of a round, each applied only while the attempt is still the row's latest (a lease that ran out and was
# taken by another sender makes the late result a no-op on the row; its attempt is still logged).
FINISH_DELIVERED = (
    "DELETE FROM webhook_deliveries d USING unnest($1::bigint[], $2::int[]) AS u(id, attempt) "
    "WHERE d.id = u.id AND d.attempts = u.attempt RETURNING d.subscription_id"
)
FINISH_RETRY = """
UPDATE webhook_deliveries d SET next_at = u.next_at, last_status_code = u.status_code
FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::int[]) AS u(id, attempt, next_at, status_code)
WHERE d.id = u.id AND d.attempts = u.attempt
"""
FINISH_FAILED = """
UPDATE webhook_deliveries d SET state = 'failed', last_status_code = u.status_code
FROM unnest($1::bigint[], $2::int[], $3::int[]) AS u(id, attempt, status_code)
WHERE d.id = u.id AND d.attempts = u.attempt AND d.state = 'pending'
RETURNING d.subscription_id
"""
INSERT_ATTEMPTS = """
INSERT INTO webhook_attempts (subscription_id, event_id, type, attempt, status_code, at, outcome, error)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::timestamptz[], $7::text[],
                     $8::text[])
"""

PRUNE_ATTEMPTS = "DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts WHERE at < $1 LIMIT $2)"
PRUNE_FAILED = """DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries WHERE state = 'failed' AND created_at < $1 LIMIT $2)"""

# /metrics: what waits and what was given up, per subscription count only (no receiver in a label).
QUEUE_FIGURES = """
SELECT (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS pending,
       (SELECT count(*) FROM webhook_deliveries WHERE state = 'failed') AS failed,
       (SELECT count(*) FROM webhook_outbox) AS outbox,
       (SELECT coalesce(max(seq), 0) FROM ledger_sequence) - (SELECT ledger_seq FROM webhook_cursor WHERE id = 1)
           AS ledger_behind,
       (SELECT extract(epoch FROM $1 - min(next_at)) FROM webhook_deliveries WHERE state = 'pending'
            AND next_at <= $1) AS oldest_due_s
"""


def plain_json(value: Any) -> Any:
    """Datetimes and the like as JSON has them (RFC 3339 strings), so the JSONB column stores what is sent."""
    return orjson.loads(orjson.dumps(value))


async def queue_figures(raw: asyncpg.Connection, now: datetime) -> asyncpg.Record:
    return await raw.fetchrow(QUEUE_FIGURES, now)


async def issuers_of_campaigns(raw: asyncpg.Connection, campaign_ids: list[str]) -> dict[str, str]:
    """{campaign id: its issuer} of the campaigns that exist among `campaign_ids`."""
    rows = await raw.fetch("SELECT id, issuer_id FROM campaigns WHERE id = ANY($1::text[])", campaign_ids)
    return {row["id"]: row["issuer_id"] for row in rows}


# -- the dispatcher's statements (dispatcher.py, background.py), each in the caller's transaction ----------------


async def lock_cursor(raw: asyncpg.Connection) -> int | None:
    """The ledger seq fanned out so far, its row locked; None when another dispatcher holds it."""
    return await raw.fetchval(LOCK_CURSOR)


async def move_cursor(raw: asyncpg.Connection, ledger_seq: int, at: datetime) -> None:
    """Fanned out up to `ledger_seq`; also the dispatcher's heartbeat."""
    await raw.execute(MOVE_CURSOR, ledger_seq, at)


async def heartbeat(raw: asyncpg.Connection) -> datetime | None:
    """When the dispatcher last moved its cursor (None: never)."""
    return await raw.fetchval(HEARTBEAT)


async def active_subscriptions(raw: asyncpg.Connection) -> list[asyncpg.Record]:
    """(id, events, issuer_id, pending) of every subscription not deleted."""
    return list(await raw.fetch(ACTIVE_SUBSCRIPTIONS))


async def ledger_top(raw: asyncpg.Connection) -> int:
    """The newest sequenced seq (0: none)."""
    return int(await raw.fetchval(LEDGER_TOP))


async def ledger_events(raw: asyncpg.Connection, after: int, upto: int, kinds: list[str]) -> list[asyncpg.Record]:
    """LEDGER_EVENTS: the sequenced transactions (after, upto] of `kinds`."""
    return list(await raw.fetch(LEDGER_EVENTS, after, upto, kinds))


async def take_outbox(raw: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """TAKE_OUTBOX: the oldest outbox events, taken off it."""
    return list(await raw.fetch(TAKE_OUTBOX, limit))


async def insert_deliveries(raw: asyncpg.Connection, columns: tuple[list, ...]) -> None:
    """INSERT_DELIVERIES of six arrays: subscription, event id, type, body, created at, status."""
    await raw.execute(INSERT_DELIVERIES, *columns)


async def add_pending(raw: asyncpg.Connection, counts: dict[str, int]) -> None:
    """Move each subscription's `pending` count by {subscription id: delta}."""
    await raw.execute(ADD_PENDING, list(counts), list(counts.values()))


async def insert_attempts(
    raw: asyncpg.Connection,
    subscription_ids: list[str],
    event_ids: list[str],
    types: list[str],
    attempts: list[int],
    status_codes: list[int | None],
    ats: list[datetime],
    outcomes: list[str],
    errors: list[str | None],
) -> None:
    await raw.execute(
        INSERT_ATTEMPTS, subscription_ids, event_ids, types, attempts, status_codes, ats, outcomes, errors
    )


async def claim_due(
    raw: asyncpg.Connection, now: datetime, per_subscription: int, limit: int, lease_end: datetime, full: list[str]
) -> list[asyncpg.Record]:
    """CLAIM_DUE: deliveries due now, leased until `lease_end`, none of the subscriptions in `full`."""
    return list(await raw.fetch(CLAIM_DUE, now, per_subscription, limit, lease_end, full))


async def finish_delivered(raw: asyncpg.Connection, ids: list[int], attempts: list[int]) -> list[str]:
    """Mark deliveries delivered; answers their subscriptions (one per delivery finished)."""
    return [row["subscription_id"] for row in await raw.fetch(FINISH_DELIVERED, ids, attempts)]


async def finish_retry(
    raw: asyncpg.Connection, ids: list[int], attempts: list[int], next_ats: list, status_codes: list
) -> None:
    await raw.execute(FINISH_RETRY, ids, attempts, next_ats, status_codes)


async def finish_failed(raw: asyncpg.Connection, ids: list[int], attempts: list[int], status_codes: list) -> list[str]:
    """Mark deliveries given up; answers their subscriptions (one per delivery finished)."""
    return [row["subscription_id"] for row in await raw.fetch(FINISH_FAILED, ids, attempts, status_codes)]


async def prune(raw: asyncpg.Connection, before: datetime, limit: int) -> None:
    """Forget attempts and given-up deliveries older than `before`, at most `limit` of each."""
    await raw.execute(PRUNE_ATTEMPTS, before, limit)
    await raw.execute(PRUNE_FAILED, before, limit)
