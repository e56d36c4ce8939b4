"""First-come claims (先到先得): the burst when a popular round opens, with no oversell and no hot row.

Design of the stock. A first-come campaign's quantity is split over `stock_shards` rows of `claim_stock` (up to
64; shard i holds quantity // n, plus one for the first quantity % n shards). A claim is one call of the SQL
function `campaign_claim` (migration 0003), one statement in its own transaction:

1. read the campaign's status (a plain read: readers never queue behind each other);
2. take a transaction advisory lock on (campaign, holder) and count the holder's vouchers: only claims of the
   same holder queue behind each other, so the per-holder limit holds across concurrent claims and wallets;
3. take one unit from the first shard, counting from a random start, that has stock and is not locked by another
   claim (`FOR UPDATE SKIP LOCKED`): concurrent claims spread over the shards instead of queueing on one
   counter. Only when every shard with stock is locked (the last units of a round) does a claim wait, on one
   shard, and look again; a round with no stock left in any shard answers `SOLD_OUT`;
4. insert the voucher.

No oversell, ever: units only leave a shard by `remaining - 1` under the row lock, `CHECK (remaining >= 0)` backs
it, and a voucher is inserted in the same transaction as the unit is taken. Close zeroes every shard (waiting for
claims holding one), so no claim that started before a close can add a voucher after it revoked the rest.

Everything that needs no database is done before it: the holder conditions (`NOT_ELIGIBLE` with the failed
conditions in `explain`), the campaign's terms (cached per process; they are immutable) and the voucher's window.
Claims use a small asyncpg pool of their own (`state.extras["campaigns.pool"]`): one round trip per claim.
"""

from __future__ import annotations

import random

import asyncpg
import orjson

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.campaigns import cache, ids, repository
from voucher_engine.campaigns.codes import make_code
from voucher_engine.campaigns.issuance import holder_key
from voucher_engine.campaigns.schemas import Voucher
from voucher_engine.errors import EngineError

CLAIM_SQL = "SELECT campaign_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12)"

_REFUSALS = {
    "SOLD_OUT": "Every voucher of this campaign has been claimed.",
    "HOLDER_LIMIT": "This holder already has as many vouchers of this campaign as the contract allows.",
    "CAMPAIGN_NOT_ACTIVE": "The campaign is not active: claims are taken only while it is.",
}


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


async def claim(state, pool: asyncpg.Pool, subject: Subject, campaign_id: str, wallet_id: str,
                id_hash: str | None, attributes: dict) -> Voucher:
    terms = await terms_for(state, subject, campaign_id)
    if terms.distribution != "first_come":
        raise EngineError("VALIDATION_ERROR", f"This campaign's contract distributes by {terms.distribution}; "
                                              "it takes no claims.")
    now = clock.now()
    valid_from, valid_until = terms.window_for(now)
    if now >= valid_until:
        raise EngineError("CAMPAIGN_NOT_ACTIVE", "The campaign's validity window has ended.")
    failures = terms.contract.check_holder(attributes)
    if failures:
        raise EngineError("NOT_ELIGIBLE", "The holder does not meet the campaign's holder conditions.",
                          explain=[failure.to_dict() for failure in failures])
    voucher_id = ids.new_voucher_id()
    key = holder_key(wallet_id, id_hash)
    result = await pool.fetchval(
        CLAIM_SQL, campaign_id, voucher_id, wallet_id, id_hash, key, terms.per_holder_limit,
        random.randrange(max(terms.stock_shards, 1)), valid_from, valid_until, terms.face_value_fen,
        orjson.dumps(attributes).decode(), now)
    if result != "OK":
        raise EngineError(result, _REFUSALS[result])
    tz = terms.tz
    return Voucher(id=voucher_id, code=make_code(state.server_secret, campaign_id, voucher_id, wallet_id),
                   campaign_id=campaign_id, wallet_id=wallet_id, status="issued", valid_from=valid_from.astimezone(tz),
                   valid_until=valid_until.astimezone(tz), face_value_fen=terms.face_value_fen,
                   balance_fen=terms.face_value_fen, issued_at=now.astimezone(tz), terms=terms.public_terms)
