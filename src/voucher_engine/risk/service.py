"""Open and read risk flags (风险标记).

`open_flag` is what every cause calls, in its own database transaction: the redemption batch for the signals it
judges per redemption, the window detector for patterns. It opens the flag once per `dedupe_key`, puts the
merchant on payout hold when the outcome is `hold` (through settlement's holds, with the flag as the hold's actor,
`risk:<flag id>`, so that a later `clear` knows the flag caused it), and records the `risk.flag_opened` webhook
event beside it. Nothing here commits: the flag exists exactly when its cause did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.campaigns.cache import contract_for
from voucher_engine.contracts.risk import DEFAULTS, OUTCOMES, SIGNALS
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.redemption.repository import ITEMS_FIRST, StatementItems
from voucher_engine.redemption.service import RiskFlagged
from voucher_engine.risk import repository
from voucher_engine.risk.schemas import STATUSES, Decision, RiskFlag, RuleOut, RuleSet
from voucher_engine.settlement import service as settlement
from voucher_engine.webhooks import service as webhooks

MAX_REDEMPTIONS = 10_000  # per flag (a CHECK says so too): evidence, not an export
MAX_EVIDENCE_BYTES = 64 * 1024
MAX_DEDUPE_KEY = 500

Connection: TypeAlias = AsyncConnection | asyncpg.Connection


def new_flag_id() -> str:
    return "rf_" + os.urandom(10).hex()


def hold_actor(flag_id: str) -> str:
    """Who a flag's payout hold is recorded as (payout_hold_events.actor): the flag itself."""
    return f"risk:{flag_id}"


async def raw_of(conn: Connection) -> asyncpg.Connection:
    return conn if isinstance(conn, asyncpg.Connection) else await driver(conn)


@dataclass(frozen=True, slots=True)
class Opened:
    """What `open_flag` did: the flag (new, or the one already under the dedupe key) and whether it is new."""

    flag: RiskFlag
    opened: bool


async def open_flag(
    conn: Connection,
    *,
    signal: str,
    outcome: str,
    merchant_id: str | None,
    campaign_id: str | None,
    redemption_ids: list[str],
    evidence: dict[str, Any],
    dedupe_key: str,
    at: datetime | None = None,
) -> Opened:
    """Open a flag in the caller's transaction, once per `dedupe_key` (a second call answers the first flag and
    does nothing more). Outcome `hold` also puts the merchant on payout hold; the `risk.flag_opened` event is
    recorded in the same transaction. `conn`: a SQLAlchemy connection in a transaction, or an asyncpg connection
    in one."""
    if signal not in SIGNALS:
        raise EngineError("VALIDATION_ERROR", f"unknown risk signal {signal!r}")
    if outcome not in OUTCOMES:
        raise EngineError("VALIDATION_ERROR", f"a flag's outcome is one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if len(redemption_ids) > MAX_REDEMPTIONS:
        raise EngineError("VALIDATION_ERROR", f"a flag names at most {MAX_REDEMPTIONS} redemptions")
    if not dedupe_key or len(dedupe_key) > MAX_DEDUPE_KEY:
        raise EngineError("VALIDATION_ERROR", f"a dedupe key is 1 to {MAX_DEDUPE_KEY} characters")
    at = at or clock.now()
    raw = await raw_of(conn)
    flag_id = new_flag_id()
    row = await repository.insert_flag(
        raw, flag_id, signal, outcome, merchant_id, campaign_id, list(redemption_ids), evidence, dedupe_key, at
    )
    if row is None:  # opened before under this key
        existing = await repository.flag_by_dedupe_key(raw, dedupe_key)
        if existing is None:  # pragma: no cover - the conflicting row is committed or ours
            raise EngineError("CONFLICT", f"risk flag {dedupe_key!r} is being opened by another transaction")
        return Opened(to_model(existing), False)
    if outcome == "hold" and merchant_id is not None:  # a pattern of no one merchant holds no one
        reason = f"risk flag {flag_id}: {signal}"
        if await settlement.hold_by_cause(raw, merchant_id, reason, hold_actor(flag_id), at):
            await repository.set_hold_caused(raw, flag_id)
    stored = await repository.get_flag(raw, flag_id)
    if stored is None:  # pragma: no cover - inserted above, in this transaction
        raise EngineError("INTERNAL", f"risk flag {flag_id} vanished in its own transaction")
    flag = to_model(stored)
    await webhooks.risk_flag_opened(
        raw, public(flag), campaign_id=campaign_id, issuer_id=stored["campaign_issuer_id"], at=at
    )
    return Opened(flag, True)


def public(flag: RiskFlag) -> dict[str, Any]:
    """The flag as API.md shows it (the webhook event's data)."""
    return flag.model_dump(mode="json", exclude={"decision"})


def to_model(row: Any) -> RiskFlag:
    evidence = row["evidence"]
    if isinstance(evidence, str):  # JSONB as asyncpg reads it without a codec
        import orjson

        evidence = orjson.loads(evidence)
    decision = None
    if row["d_decision"] is not None:
        decision = Decision(
            decision=row["d_decision"],
            note=row["d_note"],
            role=row["d_role"],
            token_id=row["d_token_id"],
            issuer_id=row["d_issuer_id"],
            decided_at=row["d_decided_at"],
            clawback_ids=list(row["d_clawback_ids"]),
            released_hold=row["d_released_hold"],
        )
    return RiskFlag(
        id=row["id"],
        signal=row["signal"],
        outcome=row["outcome"],
        merchant_id=row["merchant_id"],
        campaign_id=row["campaign_id"],
        redemption_ids=list(row["redemption_ids"]),
        evidence=evidence,
        status=row["status"],
        opened_at=row["opened_at"],
        hold_caused=row["hold_caused"],
        decision=decision,
    )


class BatchFlags:
    """The flags of a redemption batch's redemptions that met risk rules (registered by `startup` as the batch
    runner's `flag_writer`): one flag per redemption and signal, each with its `risk.flag_opened` event.

    In the odd hours of a busy category every redemption opens one, so they are written together: in an unlocked
    batch as items of its one statement (they land exactly when the batch does), in a locked batch in two
    statements of its transaction. A flag whose outcome is `hold` also holds its merchant's payouts (open_flag,
    several statements): only a locked batch opens it."""

    async def open_in_transaction(self, raw: asyncpg.Connection, flagged: list[RiskFlagged], at: datetime) -> None:
        plain: list[repository.BatchFlag] = []
        for flag in _batch_flags(flagged):
            if flag.outcome != "hold":
                plain.append(flag)
                continue
            await open_flag(
                raw,
                signal=flag.signal,
                outcome=flag.outcome,
                merchant_id=flag.merchant_id,
                campaign_id=flag.campaign_id,
                redemption_ids=[flag.redemption_id],
                evidence=flag.evidence,
                dedupe_key=flag.dedupe_key,
                at=at,
            )
        if plain:
            inserted = await repository.insert_batch_flags(raw, plain, at)
            await webhooks.risk_flags_opened(raw, _events([f for f in plain if f.id in inserted], at), at=at)

    def statement_items(self, flagged: list[RiskFlagged], at: datetime) -> StatementItems | None:
        flags = _batch_flags(flagged)
        if any(flag.outcome == "hold" for flag in flags):
            return None
        first = ITEMS_FIRST
        events = webhooks.FlagEventsItem(_events(flags, at), at=at)
        flag_args = repository.batch_flags_args(flags, at)
        flags_sql = repository.batch_flags_insert(first, tail="RETURNING 1")
        events_sql = events.sql(first + len(flag_args))
        return StatementItems(
            ctes=f", risk_flag_rows AS (\n{flags_sql}\n), risk_flag_events AS (\n{events_sql}\nRETURNING 1\n)",
            written="(SELECT count(*) FROM risk_flag_rows) + (SELECT count(*) FROM risk_flag_events)",
            whole=(
                f"(SELECT count(*) FROM risk_flag_rows) = cardinality(${first}::text[])"
                f" AND (SELECT count(*) FROM risk_flag_events) = cardinality(${first}::text[])"
            ),
            args=(*flag_args, *events.args),
        )


def _batch_flags(flagged: list[RiskFlagged]) -> list[repository.BatchFlag]:
    flags = []
    for item in flagged:
        hit = item.hit
        evidence = {
            **hit.explain(),
            **hit.evidence,
            "order_amount_fen": item.order_amount_fen,
            "voucher_id": item.voucher_id,
        }
        flags.append(
            repository.BatchFlag(
                new_flag_id(),
                hit.signal,
                hit.outcome,
                item.merchant_id,
                item.campaign_id,
                item.redemption_id,
                evidence,
                f"{hit.signal}:{item.redemption_id}",
            )
        )
    return flags


def _events(flags: list[repository.BatchFlag], at: datetime) -> list[tuple[str | None, dict[str, Any]]]:
    return [(flag.campaign_id, public(_new_flag(flag, at))) for flag in flags]


def _new_flag(flag: repository.BatchFlag, at: datetime) -> RiskFlag:
    """A batch's flag as it was just written (what reading it back would give)."""
    return RiskFlag(
        id=flag.id,
        signal=flag.signal,
        outcome=flag.outcome,
        merchant_id=flag.merchant_id,
        campaign_id=flag.campaign_id,
        redemption_ids=[flag.redemption_id],
        evidence=flag.evidence,
        status="open",
        opened_at=at,
        hold_caused=False,
    )


async def rules(conn: Connection, subject: Subject, campaign_id: str | None) -> RuleSet:
    """The risk rules in force: the platform's defaults, or a campaign's (its contract's `risk { … }` applied)."""
    require_reader(subject)
    if campaign_id is None:
        return RuleSet(campaign_id=None, rules=[RuleOut(**r) for r in DEFAULTS.to_list()])
    raw = await raw_of(conn)
    row = await repository.campaign_contract(raw, campaign_id)
    everything = subject.role == "admin" or (subject.role == "auditor" and subject.issuer_id is None)
    if row is None or not (everything or row.issuer_id == subject.issuer_id):
        raise EngineError("NOT_FOUND", f"no campaign {campaign_id!r} visible to the caller")
    contract = contract_for(row.contract_sha256, row.contract_source)
    return RuleSet(campaign_id=campaign_id, rules=[RuleOut(**r) for r in contract.risk.to_list()])


# -- reading ---------------------------------------------------------------------------------------------------------


def require_reader(subject: Subject) -> None:
    if subject.role not in ("admin", "auditor", "gov"):
        raise EngineError("FORBIDDEN", "Risk flags are for admin, auditors and the campaign's gov.")


def visible(subject: Subject, flag: RiskFlag, issuer_id: str | None) -> bool:
    """Admin and unbound auditors see every flag; a gov or a bound auditor those of its own issuer's campaigns."""
    if subject.role == "admin" or (subject.role == "auditor" and subject.issuer_id is None):
        return True
    return flag.campaign_id is not None and issuer_id is not None and issuer_id == subject.issuer_id


async def get_flag(conn: Connection, subject: Subject, flag_id: str) -> RiskFlag:
    require_reader(subject)
    raw = await raw_of(conn)
    row = await repository.get_flag(raw, flag_id)
    if row is None or not visible(subject, to_model(row), row["campaign_issuer_id"]):
        raise EngineError("NOT_FOUND", f"no risk flag {flag_id!r}")
    return to_model(row)


async def list_flags(
    conn: Connection,
    subject: Subject,
    *,
    campaign_id: str | None = None,
    merchant_id: str | None = None,
    status: str | None = None,
    signal: str | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> tuple[list[RiskFlag], int | None]:
    """A page of flags, newest first, and the `seq` to continue before (None: the last page)."""
    require_reader(subject)
    if status is not None and status not in STATUSES:
        raise EngineError("VALIDATION_ERROR", f"status is one of {', '.join(STATUSES)}")
    raw = await raw_of(conn)
    everything = subject.role == "admin" or (subject.role == "auditor" and subject.issuer_id is None)
    if campaign_id is not None and not everything:
        issuer_id = await repository.campaign_issuer(raw, campaign_id)
        if issuer_id is None or issuer_id != subject.issuer_id:
            raise EngineError("NOT_FOUND", f"no campaign {campaign_id!r} visible to the caller")
    rows = await repository.list_flags(
        raw,
        campaign_id=campaign_id,
        merchant_id=merchant_id,
        status=status,
        issuer_id=None if everything else subject.issuer_id,
        unscoped_too=everything,
        signal=signal,
        before_seq=before_seq,
        limit=limit + 1,
    )
    page = rows[:limit]
    return [to_model(row) for row in page], (page[-1]["seq"] if len(rows) > limit else None)
