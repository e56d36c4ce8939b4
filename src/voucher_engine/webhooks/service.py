"""Subscriptions (admin: every event; gov: its own campaigns' events) and the outbox that causes write to.

`record()` is what a cause calls, inside its own database transaction: the event then exists exactly when the cause
committed. Redemptions do not call it (their events come off the ledger, events.LEDGER_EVENTS).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.webhooks import repository, signing, urls
from voucher_engine.webhooks.events import LEDGER_EVENTS, WITHOUT_CAMPAIGN
from voucher_engine.webhooks.schemas import Delivery, Webhook, WebhookCreate, WebhookCreated

MAX_SUBSCRIPTIONS = 1000  # active ones, in all: every fan-out round reads them all


def new_subscription_id() -> str:
    return "whk_" + os.urandom(8).hex()


def new_event_id() -> str:
    return "evt_" + os.urandom(12).hex()


def ledger_event_id(tx_id: str) -> str:
    """A ledger-derived event's id: the same on every derivation, so receivers deduplicate a re-sent one."""
    return "evt_" + tx_id


def _require_subscriber(subject: Subject) -> None:
    if subject.role not in ("admin", "gov"):
        raise EngineError("FORBIDDEN", f"Webhooks are for admin and gov; the token is {subject.role}.")


def to_model(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        events=list(row.events),
        issuer_id=row.issuer_id,
        created_at=row.created_at,
        pending=row.pending,
    )


async def create(
    conn: AsyncConnection, subject: Subject, body: WebhookCreate, *, server_secret: bytes, allow_private: bool
) -> WebhookCreated:
    _require_subscriber(subject)
    if subject.role == "gov":
        refused = sorted(set(body.events) & WITHOUT_CAMPAIGN)
        if refused:
            raise EngineError(
                "FORBIDDEN", f"These events are the operator's, not a government's: {', '.join(refused)}."
            )
    url = await urls.check(body.url, allow_private=allow_private)
    active = await repository.list_subscriptions(
        conn, issuer_id=None, only_own=False, after=None, limit=MAX_SUBSCRIPTIONS
    )
    if len(active) >= MAX_SUBSCRIPTIONS:
        raise EngineError("CONFLICT", f"There are already {MAX_SUBSCRIPTIONS} webhooks; delete one first.")
    subscription_id = new_subscription_id()
    row = await repository.insert_subscription(
        conn,
        id=subscription_id,
        url=url,
        events=list(dict.fromkeys(body.events)),
        issuer_id=subject.issuer_id if subject.role == "gov" else None,
        created_by=subject.token_id,
        created_at=clock.real_now(),
    )
    secret = signing.subscription_secret(server_secret, subscription_id)
    return WebhookCreated(**to_model(row).model_dump(), secret=secret)


async def _visible(conn: AsyncConnection, subject: Subject, subscription_id: str) -> Any:
    _require_subscriber(subject)
    row = await repository.get_subscription(conn, subscription_id)
    if row is None or (subject.role == "gov" and row.issuer_id != subject.issuer_id):
        raise EngineError("NOT_FOUND", f"No webhook {subscription_id!r}.")
    return row


async def list_webhooks(conn: AsyncConnection, subject: Subject, *, after: str | None, limit: int) -> list[Webhook]:
    _require_subscriber(subject)
    rows = await repository.list_subscriptions(
        conn, issuer_id=subject.issuer_id, only_own=subject.role == "gov", after=after, limit=limit
    )
    return [to_model(row) for row in rows]


async def delete(conn: AsyncConnection, subject: Subject, subscription_id: str) -> None:
    await _visible(conn, subject, subscription_id)
    await repository.delete_subscription(conn, subscription_id, clock.real_now())


async def deliveries(
    conn: AsyncConnection, subject: Subject, subscription_id: str, *, before: int | None, limit: int
) -> list[tuple[int, Delivery]]:
    """The attempts log, newest first, with each row's position for the next page."""
    await _visible(conn, subject, subscription_id)
    rows = await repository.list_attempts(conn, subscription_id, before=before, limit=limit)
    return [
        (
            row.id,
            Delivery(
                event_id=row.event_id,
                type=row.type,
                attempt=row.attempt,
                status_code=row.status_code,
                at=row.at,
                outcome=row.outcome,
                error=row.error,
            ),
        )
        for row in rows
    ]


async def record(
    conn: AsyncConnection,
    type_: str,
    data: dict[str, Any],
    *,
    campaign_id: str | None = None,
    issuer_id: str | None = None,
    at: datetime | None = None,
) -> str:
    """Put an event in the outbox, in `conn`'s transaction (the cause's): it is sent if and only if that commits.

    `issuer_id` is the issuer whose gov may subscribe to it (the campaign's); when only `campaign_id` is given it is
    looked up in the dispatcher's fan-out.
    """
    assert type_ not in LEDGER_EVENTS.values(), f"{type_} is derived from the ledger, not recorded"
    event_id = new_event_id()
    await repository.insert_outbox(
        conn, event_id, type_, campaign_id, issuer_id, at or clock.now(), repository.plain_json(data)
    )
    return event_id


class EventItem:
    """An event to be written as an item of its cause's own statement (a cause that is one statement, its own
    transaction, as a refund on its unlocked way is): the item's SQL, its arguments numbered from `first`."""

    __slots__ = ("args",)

    def __init__(self, type_: str, data: dict[str, Any], *, campaign_id: str | None, at: datetime) -> None:
        assert type_ not in LEDGER_EVENTS.values(), f"{type_} is derived from the ledger, not recorded"
        # orjson writes datetimes as plain_json would: the stored JSON is what record() stores.
        self.args = repository.outbox_args(new_event_id(), type_, campaign_id, None, at, data)

    @staticmethod
    def sql(first: int) -> str:
        return repository.outbox_item(first)


def _flag_events(flags: list[tuple[str | None, dict[str, Any]]]) -> list[tuple[str, str | None, Any]]:
    return [(new_event_id(), campaign_id, repository.plain_json(flag)) for campaign_id, flag in flags]


async def risk_flags_opened(
    raw: asyncpg.Connection, flags: list[tuple[str | None, dict[str, Any]]], *, at: datetime
) -> None:
    """risk_flag_opened for many flags (campaign_id, the flag as API.md shows it), in one statement: a redemption
    batch's, on its asyncpg connection."""
    if flags:
        await repository.insert_outbox_many_raw(raw, "risk.flag_opened", _flag_events(flags), at)


class FlagEventsItem:
    """risk_flags_opened as an item of its cause's own statement (an unlocked redemption batch's): the item's SQL,
    its arguments numbered from `first`."""

    __slots__ = ("args",)

    def __init__(self, flags: list[tuple[str | None, dict[str, Any]]], *, at: datetime) -> None:
        self.args = repository.outbox_many_args("risk.flag_opened", _flag_events(flags), at)

    @staticmethod
    def sql(first: int) -> str:
        return repository.outbox_many_insert(first)


async def risk_flag_opened(
    conn: AsyncConnection | asyncpg.Connection,
    flag: dict[str, Any],
    *,
    campaign_id: str | None,
    issuer_id: str | None,
    at: datetime | None = None,
) -> str:
    """The hook for risk control: call it in the transaction that opens the flag, with the flag as API.md shows it
    (on the asyncpg connection itself where the cause runs raw, as a redemption batch does)."""
    if not isinstance(conn, asyncpg.Connection):
        return await record(conn, "risk.flag_opened", flag, campaign_id=campaign_id, issuer_id=issuer_id, at=at)
    event_id = new_event_id()
    await repository.insert_outbox_raw(
        conn, event_id, "risk.flag_opened", campaign_id, issuer_id, at or clock.now(), repository.plain_json(flag)
    )
    return event_id
