"""Quote and redeem, a micro-batch at a time.

A request is checked as far as it can be without the database (signature, body, the voucher code's MAC) in the
endpoint, then becomes a `Job`. `run_batch` takes a batch of jobs through the database in two round trips:

1. read, without locks and outside any transaction (repository.PEEK_BATCH): each job's key (revocation takes effect
   at once), whether its nonce is spent, its voucher with the voucher's version, the merchant, the campaign, and
   the earlier redemption under its idempotency key;
2. decide each job in arrival order in Python, carrying in-batch state (a voucher spent by an earlier job of the
   batch is spent for the later ones);
3. write everything set-based in one statement that is its own transaction (no BEGIN, no COMMIT round trips):
   nonces, vouchers, redemption rows and ledger transactions. Each voucher is updated only at the version it was
   decided on and each nonce only if still unspent; unless every row lands, the statement raises and writes
   nothing (migration 0008). So the campaign's escrow row, which every batch of the campaign moves, is locked only
   while that one statement runs and commits, never while a worker is busy with other requests.

A batch whose write raised (a till racing another on a voucher, a replay racing its original, a retry racing the
redemption it repeats) is run again the locked way, in one transaction: spend the nonces and lock the vouchers in
key order (repository.LOAD_BATCH, which also says how a retry racing its original is found), decide, write, commit.
Batches with a daily cap always go that way: the day's spend is counted under a row lock.

A batch runs on a connection of the runner's own small asyncpg pool, not SQLAlchemy's: one batch at a time per
worker needs one connection, and the adapter's per-checkout work and the pool's reset query cost more CPU than
the batch's own statements at a few dozen jobs.

If the locked batch fails as a whole (a unique-key race, a CHECK such as an escrow that would go negative, a
deadlock), `run_batch` raises and the micro-batcher (db/batcher.py) runs every job again alone, so one bad job
never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.campaigns.cache import cached_contract, contract_for
from voucher_engine.contracts import CompiledContract
from voucher_engine.contracts.risk import RiskHit
from voucher_engine.db.engine import plain_url
from voucher_engine.db.errors import is_database_unavailable, is_unstorable_input, violated_constraint
from voucher_engine.db.raw import no_reset
from voucher_engine.errors import EngineError
from voucher_engine.invariants import invariant, present
from voucher_engine.ledger import service as ledger
from voucher_engine.ledger.model import NewTransaction, Posting
from voucher_engine.observability.metrics import Metrics
from voucher_engine.redemption import repository
from voucher_engine.redemption.decide import MerchantView, Settlement, VoucherView, evaluate, zone

log = logging.getLogger("voucher_engine.redemption")
# The batches' connections name themselves so, for pg_stat_activity (loadtest/where_time_goes.py, the tests).
BATCH_APPLICATION_NAME = "voucher-engine batcher"


@dataclass(slots=True)
class Job:
    """One till request on its way through a batch."""

    kind: str  # "redeem" | "quote"
    key_id: str
    nonce: str
    wallet_id: str
    order_amount_fen: int
    items: list[dict[str, Any]] | None
    campaign_id: str | None = None
    voucher_id: str | None = None
    code_error: EngineError | None = None
    pos_txn_id: str | None = None
    request_sha256: str | None = None
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a job answers: a redemption (status 201 new, 200 replayed) or a quote."""

    status: int
    body: dict[str, Any]


def fingerprint(body: dict[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON: equal bodies, however formatted, match."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def new_redemption_id(campaign_id: str) -> str:
    # The campaign is part of the id, so a redemption is found by primary key (campaign_id leads it).
    return f"rdm_{campaign_id.removeprefix('cmp_')}{secrets.token_hex(12)}"


def campaign_of_redemption(redemption_id: str) -> str | None:
    if not redemption_id.startswith("rdm_") or len(redemption_id) != 4 + 16 + 24:
        return None
    return "cmp_" + redemption_id[4:20]


def redemption_body(row: Any) -> dict[str, Any]:
    refunded = row["refunded_fen"]
    clawed_back = row.get("clawed_back_fen") or 0  # absent from a batch's own answer: nothing clawed back yet
    status = (
        "settled" if refunded == 0 else ("refunded" if refunded == row["order_amount_fen"] else "partially_refunded")
    )
    if clawed_back:
        status = "clawed_back"
    out = {
        "id": row["id"],
        "status": status,
        "voucher_id": row["voucher_id"],
        "campaign_id": row["campaign_id"],
        "merchant_id": row["merchant_id"],
        "pos_txn_id": row["pos_txn_id"],
        "order_amount_fen": row["order_amount_fen"],
        "subsidy_fen": row["subsidy_fen"],
        "payable_fen": row["payable_fen"],
        "refunded_fen": refunded,
        "subsidy_refunded_fen": row["subsidy_refunded_fen"],
        "ledger_tx_id": row["ledger_tx_id"],
        "settled_at": row["settled_at"],
    }
    if clawed_back:
        # Only once clawed back, so that a replay answers exactly what the till's first answer said.
        out["clawed_back_fen"] = clawed_back
    return out


def _merchant_view(row: asyncpg.Record) -> MerchantView:
    return MerchantView(
        merchant_id=row["merchant_id"],
        status=row["merchant_status"],
        mcc=row["mcc"],
        region_code=row["region_code"],
        tags=frozenset(row["tags"]),
    )


def _voucher_view(row: asyncpg.Record, status: str | None = None, balance: int | None = None) -> VoucherView:
    return VoucherView(
        campaign_id=row["campaign_id"],
        voucher_id=row["id"],
        wallet_id=row["wallet_id"],
        status=status if status is not None else row["status"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        face_value_fen=row["face_value_fen"],
        balance_fen=balance if balance is not None else row["balance_fen"],
        campaign_status=row["campaign_status"],
        kind=row["kind"],
        daily_cap_fen=row["daily_cap_fen"],
        timezone=row["timezone"],
    )


def redeem_transaction(
    campaign_id: str, merchant_id: str, voucher_id: str, redemption_id: str, subsidy_fen: int, at: datetime
) -> NewTransaction:
    """escrow → merchant: the subsidy leaves the campaign's pool for the merchant's settlement account."""
    return NewTransaction(
        kind="redeem",
        postings=(
            Posting(f"escrow:{campaign_id}", credit_fen=subsidy_fen),
            Posting(f"merchant:{merchant_id}", debit_fen=subsidy_fen),
        ),
        refs={
            "campaign_id": campaign_id,
            "voucher_id": voucher_id,
            "redemption_id": redemption_id,
            "merchant_id": merchant_id,
        },
        at=at,
        campaign_id=campaign_id,
    )


class RiskFlagged(NamedTuple):
    """A redemption of the batch that met a risk rule whose outcome lets it settle (flag or hold)."""

    hit: RiskHit
    merchant_id: str
    campaign_id: str
    voucher_id: str
    redemption_id: str
    order_amount_fen: int


class FlagWriter(Protocol):
    """Writes the flags of a batch's redemptions: risk control's (risk/service.py), registered by the risk room at
    start (this room does not import it)."""

    async def open_in_transaction(self, conn: asyncpg.Connection, flagged: list[RiskFlagged], at: datetime) -> None:
        """In a locked batch's transaction, on its connection."""

    def statement_items(self, flagged: list[RiskFlagged], at: datetime) -> repository.StatementItems | None:
        """As items of an unlocked batch's one statement; None when they cannot be (a flag that holds payouts):
        the batch then goes the locked way."""


class BatchRunner:
    """Runs batches of jobs against the database; one per worker process."""

    def __init__(self, engine: AsyncEngine, *, max_connections: int = 2, risk: bool = True):
        self._dsn = plain_url(engine.url.render_as_string(hide_password=False))
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        # Per-redemption risk rules (contracts/risk.py): judged in the batch unless the service runs with VE_RISK=off.
        self.risk = risk
        self.flag_writer: FlagWriter | None = None

    async def _connections(self) -> asyncpg.Pool:
        # Made on first use (min_size 0: a worker starts even while the database is down). No reset query on
        # release: every use is single statements or one transaction block, committed or rolled back by its context
        # manager. Generic plans always: the batch statements are written to have one good plan for any batch, and
        # a custom plan would cost a planning (a millisecond or more for the write) on every batch.
        if self._pool is not None:
            return self._pool  # every batch after the first: no lock to take
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._max_connections,
                    reset=no_reset,
                    statement_cache_size=512,
                    server_settings={
                        "application_name": BATCH_APPLICATION_NAME,
                        "plan_cache_mode": "force_generic_plan",
                    },
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def run_batch(self, jobs: list[Job]) -> None:
        """Settle every job, or raise: the micro-batcher (db/batcher.py) then runs each job alone, so that one bad
        job never fails its neighbours, and answers a lone job's error through `as_engine_error`."""
        try:
            outcomes = await self._attempt(jobs, locked=False)
            way = "unlocked"
        except Exception as exc:  # noqa: BLE001 - the unlocked attempt wrote nothing; run it again under locks
            log.debug("unlocked batch of %d not written (%s); running it under locks", len(jobs), type(exc).__name__)
            if is_database_unavailable(exc):
                raise
            try:
                outcomes = await self._attempt(jobs, locked=True)
            except Exception as locked_exc:
                _log_if_bug(locked_exc, jobs)
                raise
            way = "locked"
        Metrics.get().write_way("redemption_batch", way)
        for job, outcome in zip(jobs, outcomes):
            _settle(job, outcome)

    async def _attempt(self, jobs: list[Job], *, locked: bool) -> list[Outcome | EngineError]:
        """One batch: `locked`, in a transaction that locks what it reads; else read without locks and written in
        one statement that is its own transaction, all or nothing (raises if anything read has changed since)."""
        now = clock.now()
        real_now = clock.real_now()
        pool = await self._connections()
        async with pool.acquire() as conn:
            if not locked:
                return await self._decide_and_write(conn, jobs, now, real_now, locked=False)
            async with conn.transaction():
                return await self._decide_and_write(conn, jobs, now, real_now, locked=True)

    async def _decide_and_write(
        self, conn: asyncpg.Connection, jobs: list[Job], now: datetime, real_now: datetime, *, locked: bool
    ) -> list[Outcome | EngineError]:
        outcomes: list[Outcome | EngineError | None] = [None] * len(jobs)
        loaded = await repository.load_batch(
            conn,
            [(j.key_id, j.nonce, j.campaign_id, j.voucher_id, j.pos_txn_id) for j in jobs],
            real_now,
            locked=locked,
            risk=self.risk,
        )
        writes = _Writes(real_now, by_itself=not locked)
        live: list[int] = []
        seen_nonces: set[tuple[str, str]] = set()
        for index, (job, row) in enumerate(zip(jobs, loaded)):
            pair = (job.key_id, job.nonce)
            if row["merchant_id"] is None:
                outcomes[index] = EngineError("BAD_SIGNATURE", "The key is unknown or revoked.")
            elif not row["fresh"] or pair in seen_nonces:
                outcomes[index] = EngineError("REPLAYED_REQUEST", "This nonce was already used with this key.")
            elif job.code_error is not None:
                outcomes[index] = job.code_error
            elif row["id"] is None:
                outcomes[index] = EngineError("VOUCHER_UNKNOWN", "No such voucher.")
            else:
                live.append(index)
            if not locked and row["fresh"] and pair not in seen_nonces:
                writes.nonces.append(pair)  # LOAD_BATCH spent them already; PEEK_BATCH leaves them to the write
            seen_nonces.add(pair)
        if not live:
            await writes.flush(conn, now)
            return outcomes  # type: ignore[return-value]

        capped = sorted(
            {
                (loaded[i]["campaign_id"], _day(loaded[i], now), loaded[i]["daily_cap_fen"])
                for i in live
                if loaded[i]["daily_cap_fen"] is not None
            }
        )
        if capped and not locked:
            # A daily cap is counted against a locked row of what the day has spent: only under locks.
            raise _NeedsLocks()
        spent = await repository.daily_spend(conn, capped) if capped else {}

        state: dict[tuple[str, str], tuple[str, int]] = {}  # voucher → (status, balance) after earlier jobs
        new_by_key: dict[tuple[str, str], dict[str, Any]] = {}
        look_again: dict[int, tuple[str, str]] = {}  # refused jobs whose voucher changed while they waited
        flagged: list[tuple[dict[str, Any], tuple[RiskHit, ...]]] = []  # redemptions that open risk flags
        for index in live:
            job, row = jobs[index], loaded[index]
            merchant = _merchant_view(row)
            key = (
                present(job.campaign_id, "a live job's code named its campaign"),
                present(job.voucher_id, "a live job's code named its voucher"),
            )
            pos_txn_id = present(job.pos_txn_id, "a redemption has its pos_txn_id") if job.kind == "redeem" else ""
            if job.kind == "redeem":
                idem_key = (merchant.merchant_id, pos_txn_id)
                previous = repository.previous_of(row) or new_by_key.get(idem_key)
                if previous is not None:
                    outcomes[index] = _replay(previous, job)
                    continue
            writes.versions.setdefault(key, row["version"])
            status, balance = state.get(key, (row["status"], row["balance_fen"]))
            voucher = _voucher_view(row, status, balance)
            try:
                contract = await compiled_contract(conn, row["contract_sha256"])
                settlement = evaluate(contract, merchant, voucher, job.wallet_id, now, job.order_amount_fen, job.items)
                _check_daily_cap(voucher, settlement, spent)
                hits = _judge_risk(contract.risk, merchant, voucher, now, job, row) if self.risk else ()
            except EngineError as refusal:
                if refusal.code == "VOUCHER_EXPIRED" and voucher.status == "issued" and job.kind == "redeem":
                    state[key] = ("expired", balance)
                    writes.vouchers[key] = ("expired", balance)  # lazy expiry
                outcomes[index] = _quote_refusal(refusal, job) if job.kind == "quote" else refusal
                if job.kind == "redeem" and row["raced"]:
                    look_again[index] = (merchant.merchant_id, pos_txn_id)
                continue
            if job.kind == "quote":
                outcomes[index] = Outcome(
                    200,
                    {"eligible": True, "subsidy_fen": settlement.subsidy_fen, "payable_fen": settlement.payable_fen},
                )
                continue
            if voucher.daily_cap_fen is not None:
                day_key = (voucher.campaign_id, settlement.spend_day)
                spent[day_key] = spent.get(day_key, 0) + settlement.subsidy_fen
                writes.add_spend(day_key, settlement.subsidy_fen, voucher.daily_cap_fen)
            if hits and not locked and self.flag_writer is None:
                raise _NeedsLocks()  # the locked way says that no one writes the flags
            state[key] = (settlement.new_status, settlement.new_balance_fen)
            writes.vouchers[key] = state[key]
            body = writes.add_redemption(job, merchant.merchant_id, settlement, now)
            new_by_key[(merchant.merchant_id, pos_txn_id)] = body
            outcomes[index] = Outcome(201, body)
            if hits:
                flagged.append((body, hits))

        if look_again:
            # Now that the locks are held, an original that committed while this batch waited is visible.
            found = await repository.existing_redemptions(conn, sorted(set(look_again.values())))
            for index, idem_key in look_again.items():
                if idem_key in found:
                    outcomes[index] = _replay(found[idem_key], jobs[index])
        if flagged and not locked:
            # The flags land in the batch's one statement, or the batch goes the locked way.
            items = self.flag_writer.statement_items(_risk_flagged(flagged), now) if self.flag_writer else None
            if items is None:
                raise _NeedsLocks()
            writes.items = items
        await writes.flush(conn, now)
        if flagged and locked:
            await self._open_flags(conn, flagged, now)
        return outcomes  # type: ignore[return-value]

    async def _open_flags(
        self, conn: asyncpg.Connection, flagged: list[tuple[dict[str, Any], tuple[RiskHit, ...]]], now: datetime
    ) -> None:
        """The risk flags of the batch's redemptions, in the batch's transaction (locked batches only)."""
        invariant(conn.is_in_transaction(), "risk flags are opened in the batch's transaction")
        if self.flag_writer is None:
            log.warning("%d redemptions met risk rules but no flag writer is registered", len(flagged))
            return
        await self.flag_writer.open_in_transaction(conn, _risk_flagged(flagged), now)


def _risk_flagged(flagged: list[tuple[dict[str, Any], tuple[RiskHit, ...]]]) -> list[RiskFlagged]:
    """One per redemption and rule met: what risk control opens a flag for."""
    return [
        RiskFlagged(
            hit, body["merchant_id"], body["campaign_id"], body["voucher_id"], body["id"], body["order_amount_fen"]
        )
        for body, hits in flagged
        for hit in hits
    ]


async def compiled_contract(conn: asyncpg.Connection, sha256: str) -> CompiledContract:
    """The compiled contract of a digest, its source read only on this process's first use of it; contracts are
    immutable, so a digest never needs invalidating."""
    compiled = cached_contract(sha256)
    if compiled is None:
        compiled = contract_for(sha256, await repository.contract_source(conn, sha256))
    return compiled


class _Writes:
    """What a batch will write, gathered while deciding, flushed set-based at the end."""

    def __init__(self, seen_at: datetime, *, by_itself: bool) -> None:
        self.seen_at = seen_at
        # The write is its own transaction (unlocked batches): it must check in the database that it landed whole.
        # Under locks nothing it names can change, and the ledger's own errors (an account not open) keep their
        # meaning.
        self.by_itself = by_itself
        self.nonces: list[tuple[str, str]] = []  # to spend in the write (unlocked batches only)
        self.versions: dict[tuple[str, str], int] = {}  # each voucher's version as read
        self.vouchers: dict[tuple[str, str], tuple[str, int]] = {}
        self.spend: dict[tuple[str, date], list[int]] = {}
        self.redemptions: list[repository.NewRedemption] = []
        self.transactions: list[NewTransaction] = []
        self.bodies: list[dict[str, Any]] = []
        self.items: repository.StatementItems | None = None  # another room's rows (unlocked batches only)

    def add_spend(self, day_key: tuple[str, date], amount_fen: int, cap_fen: int) -> None:
        entry = self.spend.setdefault(day_key, [0, cap_fen])
        entry[0] += amount_fen

    def add_redemption(self, job: Job, merchant_id: str, settlement: Settlement, now: datetime) -> dict[str, Any]:
        campaign_id = present(job.campaign_id, "a redemption's code named its campaign")
        voucher_id = present(job.voucher_id, "a redemption's code named its voucher")
        redemption_id = new_redemption_id(campaign_id)
        self.transactions.append(
            redeem_transaction(campaign_id, merchant_id, voucher_id, redemption_id, settlement.subsidy_fen, now)
        )
        items_json = orjson.dumps(job.items).decode() if job.items is not None else None
        self.redemptions.append(
            repository.NewRedemption(
                campaign_id=campaign_id,
                id=redemption_id,
                merchant_id=merchant_id,
                pos_txn_id=job.pos_txn_id,
                request_sha256=job.request_sha256,
                voucher_id=voucher_id,
                wallet_id=job.wallet_id,
                order_amount_fen=job.order_amount_fen,
                subsidy_fen=settlement.subsidy_fen,
                ledger_tx_id=None,  # named in flush, once the batch's ledger ids are made
                spend_day=settlement.spend_day,
                items_json=items_json,
            )
        )
        body = {
            "id": redemption_id,
            "status": "settled",
            "voucher_id": job.voucher_id,
            "campaign_id": job.campaign_id,
            "merchant_id": merchant_id,
            "pos_txn_id": job.pos_txn_id,
            "order_amount_fen": job.order_amount_fen,
            "subsidy_fen": settlement.subsidy_fen,
            "payable_fen": settlement.payable_fen,
            "refunded_fen": 0,
            "subsidy_refunded_fen": 0,
            "ledger_tx_id": None,
            "settled_at": now,
            "_request_sha256": job.request_sha256,
            "_wallet_id": job.wallet_id,
            "_items": job.items,
        }
        self.bodies.append(body)
        return body

    async def flush(self, conn: asyncpg.Connection, now: datetime) -> None:
        # The ledger goes last, just before COMMIT, in the same statement as the batch's own rows: the campaign's
        # escrow and totals rows, which every batch of the campaign needs, are then locked for that statement and
        # the commit only. Its ids are made first, so that the redemption rows can name them. No savepoint: any
        # error fails the whole batch transaction, which run_batch rolls back and retries job by job.
        invariant(
            len(self.transactions) == len(self.redemptions),
            "one ledger transaction per redemption",
            len(self.transactions),
            len(self.redemptions),
        )
        invariant(len(self.bodies) == len(self.redemptions), "one answer per redemption", len(self.bodies))
        ids = ledger.new_tx_ids(len(self.transactions)) if self.transactions else []
        for body, tx_id in zip(self.bodies, ids):
            body["ledger_tx_id"] = tx_id
        redemptions = [row._replace(ledger_tx_id=tx_id) for row, tx_id in zip(self.redemptions, ids)]
        vouchers = [(c, v, s, b, self.versions[(c, v)]) for (c, v), (s, b) in sorted(self.vouchers.items())]
        spend = [(c, d, amount, cap) for (c, d), (amount, cap) in sorted(self.spend.items())]
        if not self.transactions:
            invariant(self.items is None, "flags come with redemptions")
            if vouchers or spend or self.nonces:
                await repository.write_batch(conn, now, vouchers, redemptions, spend, self.nonces, self.seen_at)
            return
        # One round trip for the batch's own rows and its ledger transactions, all or nothing.
        posting = ledger.prepare(self.transactions, ids)
        with ledger.refusals(posting):
            written, result = await repository.write_batch_and_post(
                conn,
                now,
                vouchers,
                redemptions,
                spend,
                self.nonces,
                self.seen_at,
                posting,
                whole=self.by_itself,
                items=self.items,
            )
        posted = await ledger.landed(conn, posting, result)
        repository.check_written(written, vouchers, redemptions, spend, self.nonces)
        invariant([tx.id for tx in posted] == ids, "the ledger posted the transactions under the ids made for them")


class _NeedsLocks(Exception):
    """The unlocked way cannot decide this batch (a daily cap): run it under locks."""


def _day(row: asyncpg.Record, now: datetime) -> date:
    return now.astimezone(zone(row["timezone"])).date()


def _judge_risk(
    rules: Any, merchant: MerchantView, voucher: VoucherView, now: datetime, job: Job, row: asyncpg.Record
) -> tuple[RiskHit, ...]:
    """The per-redemption risk rules this job meets (contracts/risk.py); RISK_REFUSED where one refuses."""
    if not rules.per_redemption:
        return ()
    local = now.astimezone(zone(voucher.timezone))
    hits = rules.judge_redemption(
        mcc=merchant.mcc,
        local_seconds=local.hour * 3600 + local.minute * 60 + local.second,
        order_amount_fen=job.order_amount_fen,
        refunds_here=row["refunds_here"],
    )
    refused = [hit for hit in hits if hit.outcome == "refuse"]
    if refused:
        first = refused[0]
        raise EngineError(
            "RISK_REFUSED",
            f"Risk control refuses this payment: {first.rule.text} (seen {first.actual}).",
            explain=[hit.explain() for hit in refused],
        )
    return hits


def _check_daily_cap(voucher: VoucherView, settlement: Settlement, spent: dict[tuple[str, date], int]) -> None:
    if voucher.daily_cap_fen is None:
        return
    already = spent.get((voucher.campaign_id, settlement.spend_day), 0)
    if already + settlement.subsidy_fen > voucher.daily_cap_fen:
        raise EngineError(
            "DAILY_BUDGET_EXHAUSTED",
            f"Today's budget of this campaign is spent ({already} of {voucher.daily_cap_fen} fen); try again tomorrow.",
        )


def _replay(previous: Any, job: Job) -> Outcome | EngineError:
    """`previous`: a body made earlier in this batch (with `_request_sha256`), or a stored redemption's columns."""
    in_batch = isinstance(previous, dict) and "_request_sha256" in previous
    stored_sha = previous["_request_sha256"] if in_batch else previous["request_sha256"]
    if stored_sha != job.request_sha256:
        fields = _differing_fields(previous, job)
        return EngineError(
            "IDEMPOTENCY_CONFLICT",
            f"pos_txn_id {job.pos_txn_id!r} was already used for a different request"
            f" (it differs in {', '.join(fields) or 'its body'}); use a new pos_txn_id for a new order,"
            " or send the first request again unchanged.",
            fields=fields,
        )
    # A body made earlier in this batch is shared, not copied: its ledger_tx_id is filled in when the batch writes.
    return Outcome(200, previous if in_batch else redemption_body(previous))


def _differing_fields(previous: Any, job: Job) -> list[str]:
    """Which of the request's fields differ from the first request's, for a conflict's answer (conflicts only: off
    the hot path). `previous` is a body made earlier in this batch or a stored redemption's columns."""
    in_batch = isinstance(previous, dict) and "_request_sha256" in previous
    wallet_id = previous["_wallet_id"] if in_batch else previous["wallet_id"]
    items = previous["_items"] if in_batch else previous["items"]
    if isinstance(items, str):  # JSONB as asyncpg reads it
        items = orjson.loads(items)
    compared = (
        ("voucher_code", previous["voucher_id"], job.voucher_id),
        ("wallet_id", wallet_id, job.wallet_id),
        ("order_amount_fen", previous["order_amount_fen"], job.order_amount_fen),
        ("items", items, job.items),
    )
    return [name for name, first, now in compared if first != now]


def _quote_refusal(refusal: EngineError, job: Job) -> Outcome | EngineError:
    body: dict[str, Any] = {
        "eligible": False,
        "subsidy_fen": 0,
        "payable_fen": job.order_amount_fen,
        "code": refusal.code,
        "detail": refusal.detail,
    }
    if "explain" in refusal.extra:
        body["explain"] = refusal.extra["explain"]
    return Outcome(200, body)


def as_engine_error(exc: BaseException) -> EngineError:
    """What a job of a failed batch, run alone, answers (the micro-batcher's `classify`). The database's refusals
    are told apart by the name of the constraint that refused, never by the message's text; anything not known to
    be the caller's answer is a bug (a voucher's balance out of its range, an unbalanced ledger transaction, an
    invariant): INTERNAL, logged (`run_batch` has logged the jobs of the batch it failed in)."""
    if isinstance(exc, EngineError):
        return exc
    if is_database_unavailable(exc):
        return EngineError("UNAVAILABLE", "The database is unreachable; try again shortly.")
    if is_unstorable_input(exc):
        return EngineError("VALIDATION_ERROR", "Text in the request must not contain NUL (U+0000) characters.")
    answer = _refusal_by_constraint(exc)
    if answer is not None:
        return answer
    log.error("redemption failed (%s, constraint %s)", type(exc).__name__, violated_constraint(exc), exc_info=exc)
    return EngineError("INTERNAL", "The redemption could not be completed; nothing was changed.")


def _refusal_by_constraint(exc: BaseException) -> EngineError | None:
    """The till's answer for a database refusal that is one (by the violated constraint's name), else None."""
    constraint = violated_constraint(exc)
    if constraint == repository.DAILY_CAP_CHECK:
        # The database's CHECK is the cap's last line: refuse as the decision would have.
        return EngineError("DAILY_BUDGET_EXHAUSTED", "Today's budget of this campaign is spent; try again tomorrow.")
    if constraint == ledger.ESCROW_CHECK:
        # The ledger turns this one into INSUFFICIENT_FUNDS itself; kept here should it ever arrive raw.
        return EngineError("INSUFFICIENT_FUNDS", "The campaign's escrow cannot cover this subsidy.")
    return None


def _log_if_bug(exc: BaseException, jobs: list[Job]) -> None:
    """Log a failed batch with its jobs when the failure is not an answer to a till (nor the database gone)."""
    if isinstance(exc, EngineError) or is_database_unavailable(exc) or is_unstorable_input(exc):
        return
    if _refusal_by_constraint(exc) is not None:
        return
    log.error(
        "redemption batch of %d failed (%s, constraint %s); jobs: %s",
        len(jobs),
        type(exc).__name__,
        violated_constraint(exc),
        "; ".join(_job_summary(job) for job in jobs),
        exc_info=exc,
    )


def _job_summary(job: Job) -> str:
    # What finds the request again in the till's and the database's records; no wallet, no code, no items.
    return (
        f"{job.kind} campaign={job.campaign_id} voucher={job.voucher_id} key={job.key_id} "
        f"pos_txn_id={job.pos_txn_id} order_fen={job.order_amount_fen}"
    )


def _settle(job: Job, outcome: Outcome | EngineError) -> None:
    if job.future.done():
        return
    if isinstance(outcome, EngineError):
        job.future.set_exception(outcome)
    else:
        public = {key: value for key, value in outcome.body.items() if not key.startswith("_")}
        job.future.set_result(Outcome(outcome.status, public))
