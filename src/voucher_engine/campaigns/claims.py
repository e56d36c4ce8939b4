"""First-come claims (先到先得): the burst when a popular round opens, with no oversell and no hot row.

Design of the stock. A first-come campaign's quantity is split over `stock_shards` rows of `claim_stock` (up to
64; shard i holds quantity // n, plus one for the first quantity % n shards). Claims are decided by the SQL
function `campaign_claims` (migration 0006), one statement and one transaction for a batch of claims of one
campaign, set-wise rather than claim by claim:

1. read the campaign's status (a plain read: readers never queue behind each other);
2. take transaction advisory locks on (campaign, holder) for the batch's holders, in one global order, and count
   each holder's vouchers (one index probe per holder) plus the same holder's earlier claims in the batch: only
   claims of the same holder queue behind each other, so the per-holder limit holds across concurrent claims and
   across wallets (`id_hash`), and batches never deadlock;
3. take the units for all the batch's remaining claims from the first shard, counting from a random start, that
   has stock and is not held by another transaction (`FOR UPDATE SKIP LOCKED`), then from the next if it had
   fewer: one UPDATE `remaining - k` per batch instead of one per claim, and concurrent batches spread over the
   shards instead of queueing on one counter. The function never waits for a shard: the claims left without a
   unit are `SOLD_OUT` when no shard has stock, else `RETRY` (the last units of a round are held by another batch
   for a moment) and the batcher puts them into its next batch;
4. insert the granted vouchers in one INSERT; claims are granted in arrival order.

No oversell, ever: units only leave a shard by `remaining - k` under the row lock with k at most what the row
holds, `CHECK (remaining >= 0)` backs it, and the vouchers are inserted in the same transaction as their units are
taken. Close zeroes every shard (waiting for batches holding one) before it revokes, so no claim that started
before a close can add a voucher after it.

Why batches. Each commit waits for a WAL flush (milliseconds on small disks); the per-worker micro-batcher that
redemption uses too (db/batcher.py) sends the claims that arrive while earlier batches are in flight as one call, so
a burst costs one flush per batch, not per claim, while a lone claim still goes at once. At most `MAX_INFLIGHT`
batches per worker are in flight, each of at most `MAX_BATCH` claims, each on a connection `ClaimRunner` keeps (no
pool reset per batch); a batch's claims are answered individually, and a batch that fails in the database (a NUL in
one claim's text) is run again one claim at a time, so only the bad claim fails. Voucher ids are drawn per batch
(`ids.voucher_id_block`).

Everything that needs no database is done before it: the holder conditions (`NOT_ELIGIBLE` with the failed
conditions in `explain`, never the values seen), an attestation's checks but its jti's single use (the attesters
from a per-process registry at most 2 s old), the campaign's terms (cached per process; they are immutable) and
the voucher's window. The jti is locked, checked and spent by `campaign_claims` in the claim's own transaction.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from voucher_engine import clock
from voucher_engine.attestations import service as attestation_service
from voucher_engine.attestations.checks import Gate, holder_explain, invalid
from voucher_engine.auth.subjects import Subject
from voucher_engine.campaigns import cache, ids, repository
from voucher_engine.campaigns.codes import make_code
from voucher_engine.db.batcher import MicroBatcher
from voucher_engine.errors import EngineError
from voucher_engine.invariants import invariant

MAX_BATCH = 256
MAX_INFLIGHT = 4
MAX_RETRIES = 200
_UTC_Z = orjson.OPT_UTC_Z

_REFUSALS = {
    "SOLD_OUT": "Every voucher of this campaign has been claimed.",
    "HOLDER_LIMIT": "This holder already has as many vouchers of this campaign as the contract allows.",
    "CAMPAIGN_NOT_ACTIVE": "The campaign is not active: claims are taken only while it is.",
}
# campaign_claims' answer for a claim whose attestation's jti was spent before (or earlier in its batch).
REPLAYED = "ATTESTATION_REPLAYED"
# campaign_claims_by_token's answer for a claim whose bearer token was revoked before its batch ran.
REVOKED = "UNAUTHENTICATED"


async def terms_for(state, subject: Subject, campaign_id: str) -> cache.Terms:
    terms = cache.cached_terms(campaign_id)
    if terms is None:
        async with state.engine.connect() as conn:
            row = await repository.get_campaign(conn, campaign_id)
        if row is None or not subject.can_see_issuer(row.issuer_id):
            raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
        terms = cache.terms_from_row(row)
    if not subject.can_see_issuer(terms.issuer_id):
        raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
    if subject.role != "gov" or subject.issuer_id != terms.issuer_id:
        raise EngineError("FORBIDDEN", "Claims are made through the issuing government's own token.")
    return terms


@dataclass(slots=True)
class _Pending:
    terms: cache.Terms
    wallet_id: str
    id_hash: str | None
    # The claim's attestation, as `attestation_uses` records it (all None for a claim with raw attributes, which
    # are decided before the batch and never sent to the database).
    jti: str | None
    attestation_sha256: bytes | None
    attester_id: str | None
    now: datetime
    valid_from: datetime
    valid_until: datetime
    future: asyncio.Future
    # The bearer token the claim came with: the batch's statement refuses the claim if it is revoked by then.
    token_id: str
    # Given when the claim's first batch is sent: one random stem per batch (ids.voucher_id_block), not per claim.
    voucher_id: str = ""
    retries: int = 0


class ClaimRunner:
    """Runs the claims' micro-batches (db/batcher.py's `MicroBatcher`, up to `MAX_INFLIGHT` at once): one
    `campaign_claims` call per campaign of a batch, each on a connection the runner keeps."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        # Connections kept out of the pool while the worker lives, one per batch in flight: a pool's release resets
        # the session (one more statement and round trip per batch, a tenth of a worker's CPU in a burst). A
        # slot holds None until first used, or after its connection failed (then it is handed back to the pool,
        # which closes or resets it, and the next batch takes a fresh one).
        self.connections: asyncio.Queue[asyncpg.Connection | None] = asyncio.Queue()
        for _ in range(min(MAX_INFLIGHT, pool.get_max_size())):
            self.connections.put_nowait(None)

    async def close(self) -> None:
        while not self.connections.empty():
            conn = self.connections.get_nowait()
            if conn is not None:
                await self.pool.release(conn)

    async def run_batch(self, batch: list[_Pending]) -> list[_Pending]:
        """Answer every claim of `batch` or raise; hand back the claims to try again in a later batch (`RETRY`)."""
        by_campaign: dict[str, list[_Pending]] = {}
        for item in batch:
            by_campaign.setdefault(item.terms.campaign_id, []).append(item)
        results = await asyncio.gather(
            *(self._run_group(group) for group in by_campaign.values()), return_exceptions=True
        )
        again: list[_Pending] = []
        for result in results:
            if isinstance(result, BaseException):
                # The groups that succeeded are answered; the batcher runs the failed group's claims one by one.
                raise result
            again.extend(result)
        if again:
            await asyncio.sleep(0.001)  # the last units are held by another batch for a moment
        return again

    async def _run_group(self, group: list[_Pending]) -> list[_Pending]:
        terms = group[0].terms
        fresh = [item for item in group if not item.voucher_id]
        for item, voucher_id in zip(fresh, ids.voucher_id_block(len(fresh))):
            item.voucher_id = voucher_id
        conn = await self.connections.get()
        try:
            if conn is None:
                conn = await self.pool.acquire()
            results = await repository.claim_batch(
                conn,
                terms.campaign_id,
                voucher_ids=[p.voucher_id for p in group],
                wallet_ids=[p.wallet_id for p in group],
                id_hashes=[p.id_hash for p in group],
                per_holder_limit=terms.per_holder_limit,
                first_shard=random.randrange(max(terms.stock_shards, 1)),
                claimed_at=[p.now for p in group],
                valid_from=[p.valid_from for p in group],
                valid_until=[p.valid_until for p in group],
                face_value_fen=terms.face_value_fen,
                jtis=[p.jti for p in group],
                attestation_sha256s=[p.attestation_sha256 for p in group],
                attester_ids=[p.attester_id for p in group],
                token_ids=[p.token_id for p in group],
            )
            self.connections.put_nowait(conn)
        except BaseException:
            self.connections.put_nowait(None)
            if conn is not None:
                await _give_back(self.pool, conn)
            raise
        invariant(len(results) == len(group), "one result per claim of the group", len(results), len(group))
        again: list[_Pending] = []
        for item, result in zip(group, results):
            if item.future.done():  # the claimant went away (cancelled); its voucher, if any, stays issued
                continue
            if result == "RETRY" and item.retries < MAX_RETRIES:
                item.retries += 1
                again.append(item)
            elif result == "RETRY":
                item.future.set_exception(
                    EngineError("UNAVAILABLE", "The last vouchers are being claimed right now; try again.")
                )
            else:
                item.future.set_result(result)
        return again


async def _give_back(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """A connection whose batch failed goes back to the pool, which resets it or, if broken, closes it."""
    try:
        await pool.release(conn, timeout=5)
    except Exception:  # noqa: BLE001 - a broken connection only needs closing
        conn.terminate()


async def claim(
    state,
    batcher: MicroBatcher[_Pending],
    subject: Subject,
    campaign_id: str,
    wallet_id: str,
    id_hash: str | None,
    attributes: dict,
    attestation: str | None = None,
) -> bytes:
    """Claim one voucher; answers the voucher as the JSON document of `schemas.Voucher` (built directly: this is
    the burst's hot path, and the model's validation and serialisation cost more than the claim's own work)."""
    terms = await terms_for(state, subject, campaign_id)
    if terms.distribution != "first_come":
        raise EngineError(
            "VALIDATION_ERROR", f"This campaign's contract distributes by {terms.distribution}; it takes no claims."
        )
    now = clock.now()
    valid_from, valid_until = terms.window_for(now)
    if now >= valid_until:
        raise EngineError("CAMPAIGN_NOT_ACTIVE", "The campaign's validity window has ended.")
    use = None
    if attestation is None and terms.contract.model.attester is None:
        failures = terms.contract.check_holder(attributes)
    else:
        if attestation is not None and attributes:
            raise EngineError("VALIDATION_ERROR", "A holder carries attributes or an attestation, not both.")
        gate = Gate(
            campaign_id=terms.campaign_id,
            check_holder=terms.contract.check_holder,
            attester_name=terms.contract.model.attester,
            attesters=await attestation_service.cached(state.engine) if attestation is not None else {},
            now_s=int(clock.real_now().timestamp()),  # a security window, like request signing's
        )
        decision = gate.decide_attested(wallet_id, id_hash, attestation, record=False) if attestation else None
        if decision is None:
            raise invalid("required")
        if decision.code == "ATTESTATION_INVALID":
            raise invalid(decision.check or "malformed")
        failures, use = decision.failures, decision.use
    if failures:
        raise EngineError(
            "NOT_ELIGIBLE",
            "The holder does not meet the campaign's holder conditions.",
            explain=holder_explain(failures),
        )
    item = _Pending(
        terms=terms,
        wallet_id=wallet_id,
        id_hash=id_hash,
        jti=use.jti if use is not None else None,
        attestation_sha256=use.sha256 if use is not None else None,
        attester_id=use.attester_id if use is not None else None,
        now=now,
        valid_from=valid_from,
        valid_until=valid_until,
        future=asyncio.get_running_loop().create_future(),
        token_id=subject.token_id,
    )
    batcher.submit(item)
    result = await item.future
    if result == REPLAYED:
        raise invalid("replayed")
    if result == REVOKED:
        raise EngineError("UNAUTHENTICATED", "The token is unknown or revoked.")
    if result != "OK":
        raise EngineError(result, _REFUSALS[result])
    return voucher_document(state.server_secret, terms, item)


def voucher_document(server_secret: bytes, terms: cache.Terms, item: _Pending) -> bytes:
    """The claimed voucher as `schemas.Voucher` serialises it (times in the campaign's calendar; UTC as `Z`)."""
    tz = terms.tz
    return orjson.dumps(
        {
            "id": item.voucher_id,
            "code": make_code(server_secret, terms.campaign_id, item.voucher_id),
            "campaign_id": terms.campaign_id,
            "wallet_id": item.wallet_id,
            "status": "issued",
            "valid_from": item.valid_from.astimezone(tz),
            "valid_until": item.valid_until.astimezone(tz),
            "face_value_fen": terms.face_value_fen,
            "balance_fen": terms.face_value_fen,
            "issued_at": item.now.astimezone(tz),
            "terms": terms.public_terms,
        },
        option=_UTC_Z,
    )
