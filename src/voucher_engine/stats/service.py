"""Statistics: the rollup round (off the redemption path) and the campaign stats built from the rollups.

Freshness: a redemption reaches the rollups once the ledger has sequenced it (`VE_LEDGER_SEQUENCE_INTERVAL_S`,
0.2 s) and the next round has run (`VE_STATS_INTERVAL_S`, 1 s) — about 1.2 s plus the rounds' own time, while the
poller keeps up. A round takes at most ROUND_LIMIT transactions and the poller goes again at once while rounds come
back full, so a backlog (a restart, a new deployment over an old ledger) is worked off at the rollup's own speed.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine.auth import service as auth_service
from voucher_engine.auth.subjects import Subject
from voucher_engine.db import tailer
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.stats import repository
from voucher_engine.stats.schemas import Bucket

log = logging.getLogger("voucher_engine.stats")

ROUND_LIMIT = 20_000  # ledger transactions per round: one statement of about a second at the most
POLL_INTERVAL_S = float(os.environ.get("VE_STATS_INTERVAL_S", "1.0"))
MAX_BUCKETS = 10_000  # hours or days per answer (the latest ones): over a year of hours
MAX_BREAKDOWN_ROWS = 1_000  # regions or categories per answer, the largest first
MAX_CACHED_ANSWERS = 256  # per worker: a few hundred rows each (an hourly answer of a month is about 125 kB)
READERS = ("gov", "auditor")


@dataclass(frozen=True)
class RoundResult:
    taken: int  # ledger transactions read
    moves: int  # of which redemptions, refunds and clawbacks
    last_seq: int | None  # the cursor after the round (None: nothing new, or another poller holds the lock)


async def rollup_round(conn: AsyncConnection, limit: int = ROUND_LIMIT) -> RoundResult:
    """Add the next sequenced transactions to the rollups, in `conn`'s transaction (the caller commits).

    Only one round runs at a time (a transaction-scoped try-lock): another poller's round answers nothing taken.
    """
    done = await repository.rollup_round(await driver(conn), limit)
    return RoundResult(0, 0, None) if done is None else RoundResult(*done)


async def _round_taken(conn: AsyncConnection, limit: int) -> int:
    return (await rollup_round(conn, limit)).taken


async def catch_up(engine: AsyncEngine, limit: int = ROUND_LIMIT) -> int:
    """Run rounds, each committed, until one comes back short; answers how many transactions were read."""
    return await tailer.catch_up(engine, _round_taken, limit)


async def run_forever(engine: AsyncEngine, interval_s: float | None = None) -> None:
    """The poller: every worker runs one; the lock makes all but one of them idle at any moment."""
    await tailer.run_forever(
        engine,
        _round_taken,
        ROUND_LIMIT,
        lambda: POLL_INTERVAL_S if interval_s is None else interval_s,
        log,
        "stats rollup",
    )


def ratio(order_amount_fen: int, subsidy_fen: int) -> str:
    if subsidy_fen <= 0:
        return "0.00"
    return str((Decimal(order_amount_fen) / Decimal(subsidy_fen)).quantize(Decimal("0.01"), rounding=ROUND_DOWN))


class AnswerCache:
    """The latest answers this worker built, by (campaign, bucket), each kept under the campaign's rollup sequence.

    An answer is good for as long as the campaign's sequence has not moved (nothing changed its rollups). Bounded:
    the least recently used answer goes first."""

    def __init__(self, max_answers: int = MAX_CACHED_ANSWERS):
        self._answers: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()
        self._max = max_answers

    def get(self, campaign_id: str, bucket: str) -> tuple[int, bytes] | None:
        found = self._answers.get((campaign_id, bucket))
        if found is not None:
            self._answers.move_to_end((campaign_id, bucket))
        return found

    def put(self, campaign_id: str, bucket: str, version: int, body: bytes) -> None:
        self._answers[(campaign_id, bucket)] = (version, body)
        self._answers.move_to_end((campaign_id, bucket))
        while len(self._answers) > self._max:
            self._answers.popitem(last=False)


async def answer(
    raw: asyncpg.Connection | asyncpg.Pool,
    cache: AnswerCache | None,
    authorization: str | None,
    campaign_id: str,
    bucket: Bucket,
) -> tuple[bytes, Subject]:
    """The stats endpoint's answer as JSON bytes, and who asked.

    One statement checks the token (revoked answers UNAUTHENTICATED at once), finds the campaign and its rollup
    sequence, and builds the answer from the rollups only when `cache` has none under that sequence; `as_of` is
    added to every answer, fresh."""
    digest = auth_service.bearer_digest(authorization)
    kept = cache.get(campaign_id, bucket) if cache is not None else None
    row = await repository.stats_answer(
        raw,
        digest,
        campaign_id,
        bucket=bucket,
        kept_version=kept[0] if kept else -1,
        max_buckets=MAX_BUCKETS,
        max_breakdown_rows=MAX_BREAKDOWN_ROWS,
    )
    if row is None or row["token_id"] is None:
        raise EngineError("UNAUTHENTICATED", auth_service.UNKNOWN_TOKEN)
    subject = Subject(
        role=row["role"], token_id=row["token_id"], issuer_id=row["token_issuer_id"], issuer_region=row["token_region"]
    )
    if subject.role not in READERS:
        raise EngineError("FORBIDDEN", f"This needs the role gov or auditor; the token is {subject.role}.")
    # Who may read: as for the campaign itself (its issuer's gov, auditors of all or of that issuer), and a
    # government named as a co-funder. Anyone else is told there is no such campaign.
    if row["issuer_id"] is None or not (
        subject.can_see_issuer(row["issuer_id"]) or (subject.role == "gov" and subject.issuer_id in row["funders"])
    ):
        raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
    if row["body"] is not None:
        body = row["body"].encode()
        if cache is not None:
            cache.put(campaign_id, bucket, row["version"], body)
    else:
        assert kept is not None  # the statement builds the answer whenever the sequence is not the kept one
        body = kept[1]
    as_of = {"ledger_seq": row["last_seq"], "ledger_head_seq": row["head_seq"], "updated_at": row["updated_at"]}
    return body[:-1] + b',"as_of":' + orjson.dumps(as_of) + b"}", subject


async def campaign_stats(conn: AsyncConnection, authorization: str | None, campaign_id: str, bucket: Bucket) -> dict:
    """The answer as a dict, built afresh on `conn` (for scripts and tests)."""
    body, _ = await answer(await driver(conn), None, authorization, campaign_id, bucket)
    return orjson.loads(body)
