"""Issuance (发券): targeted lists and lotteries, a million vouchers in seconds.

An issuance is one database transaction on one connection, under the campaign's advisory lock (so issuances and
close of one campaign never interleave): either every voucher of it is issued or none. Holders stream through in
chunks of `CHUNK`: each chunk is checked in Python (holder conditions by the compiled contract, per-holder limits,
quantity) and the accepted vouchers go to PostgreSQL by binary COPY. Memory stays flat whatever the list's size:
one chunk of rows, plus the key and count of each holder issued to (to hold per-holder limits across chunks).

Rules, in the order applied to each listed holder:
1. `NOT_ELIGIBLE` — the contract's holder conditions fail on the attributes given;
2. `HOLDER_LIMIT` — the holder (`id_hash`, else the wallet) already holds `per_holder_limit` vouchers of this
   campaign, counting every status and every wallet with the same `id_hash`;
3. `SOLD_OUT` — the campaign's quantity is reached.
Otherwise the holder gets one voucher whose window is the contract's (`valid_for N days from issue` counts from the
issuance's start, the same instant for the whole list).

Issuances of `JOB_THRESHOLD` holders or more run in the background of the worker that received them and report
progress in their `issuances` row (GET /v1/issuances/{id}).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.attestations import repository as attestation_repository
from voucher_engine.attestations import service as attestation_service
from voucher_engine.attestations.checks import CHECKS, Gate, holder_explain
from voucher_engine.attestations.verifier import Verifier
from voucher_engine.campaigns import cache, ids, lottery, repository
from voucher_engine.campaigns.schemas import MAX_REJECTED_LISTED, HolderTuple
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.invariants import InvariantViolation, invariant

log = logging.getLogger("voucher_engine.campaigns.issuance")

CHUNK = 20_000
# Attestation uses are written by COPY every this many (between two COPYs of vouchers), not all after the vouchers.
USES_WRITE_EVERY = 20_000
# Lottery publications list excluded applicants and winners up to this many; past it, digests and counts only.
MAX_PUBLISHED_KEYS = 100_000
ISSUABLE_STATUSES = ("funded", "active")

Progress = Callable[[int, int, int], Awaitable[None]]


@dataclass
class IssuanceTally:
    """What an issuance run has done so far: counts, the rejections listed, the lottery's draw, the voucher ids."""

    processed: int = 0
    issued: int = 0
    rejected_count: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    lottery: dict[str, Any] | None = None
    voucher_ids: list[str] = field(default_factory=list)

    def reject(
        self, wallet_id: str, code: str, check: str | None = None, explain: Callable[[], list] | None = None
    ) -> None:
        """Count a rejection and list it (the first MAX_REJECTED_LISTED). `explain`, for NOT_ELIGIBLE, is called only
        for a listed rejection: the failed conditions are worked out again only for those a person will read."""
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_LISTED:
            entry: dict[str, Any] = {"wallet_id": wallet_id, "code": code}
            if check is not None:  # which of an attestation's checks failed, never what the token says
                entry.update(check=check, detail=CHECKS[check])
            if explain is not None:
                entry["explain"] = explain()
            self.rejected.append(entry)


# JSON types a holder attribute must have, by the type the contract gives it.
_JSON_TYPES = {"int": int, "integer": int, "money": int, "text": str, "region": str, "date": str}


def explain_holder(failures: list, attributes: dict[str, Any], types: dict[str, str]) -> list[dict[str, Any]]:
    """A NOT_ELIGIBLE rejection's `explain`: the failed conditions (without the holder's values: no personal data in
    answers), and, where an attribute was sent as the wrong JSON type, a `note` saying so (a `residence_region` sent
    as a number is never within a region; nobody should have to guess that)."""
    explain = holder_explain(failures)
    for entry in explain:
        for name, ftype in types.items():
            value = attributes.get(name)
            wanted = _JSON_TYPES.get(ftype)
            if value is None or wanted is None or name not in entry.get("rule", ""):
                continue
            if type(value) is not wanted:
                shown = "a string" if wanted is str else "a whole number"
                example = ' such as "310104"' if ftype == "region" else ""
                entry["note"] = (
                    f"{name} was sent as a JSON {type(value).__name__}; the contract reads it as {ftype}: send {shown}"
                    f"{example}"
                )
    return explain


async def _chunks_of(holders: Iterable[HolderTuple] | AsyncIterable[list[HolderTuple]]):
    if isinstance(holders, AsyncIterable):
        async for given in holders:
            yield given
        return
    chunk: list[HolderTuple] = []
    for holder in holders:
        chunk.append(holder)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_issuable(row, kind: str, now: datetime) -> None:
    """Refusals that apply to the whole issuance (answered before any job starts)."""
    if row.status not in ISSUABLE_STATUSES:
        raise EngineError(
            "INVALID_STATE",
            f"Vouchers are issued while a campaign is funded or active; this one is {row.status}.",
            campaign_status=row.status,
        )
    if row.distribution != kind:
        raise EngineError(
            "VALIDATION_ERROR",
            f"This campaign's contract distributes by {row.distribution}; a {kind} issuance does not apply.",
        )
    if row.valid_until is not None and now >= row.valid_until:
        raise EngineError("INVALID_STATE", "The campaign's validity window has ended; no voucher can be issued.")


async def run(
    engine: AsyncEngine,
    campaign_id: str,
    issuance_id: str,
    *,
    kind: str,
    holders: Iterable[HolderTuple] | AsyncIterable[list[HolderTuple]] | None = None,
    applicants: list[HolderTuple] | None = None,
    seed: bytes | None = None,
    progress: Progress | None = None,
    keep_voucher_ids: bool = False,
) -> IssuanceTally:
    """Issue to a targeted list (`holders`) or draw a lottery (`applicants`, `seed`), in one transaction."""
    outcome = IssuanceTally()
    async with engine.begin() as conn:
        await repository.lock_campaign(conn, campaign_id)
        row = await repository.get_campaign(conn, campaign_id)
        if row is None:
            raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
        issued_at = clock.now()
        check_issuable(row, kind, issued_at)
        terms = cache.terms_from_row(row)
        raw = await driver(conn)
        existing = await repository.count_vouchers(conn, campaign_id)
        remaining = row.quantity - existing
        invariant(remaining >= 0, "no more vouchers issued than the quantity", row.quantity, existing)
        # Attesters and the campaign's spent jtis read now, in this transaction, before the COPY takes the
        # connection (issuances of one campaign are serialised by its lock, so the spent set stays exact).
        gate = Gate(
            campaign_id=campaign_id,
            check_holder=terms.contract.check_holder,
            attester_name=terms.contract.model.attester,
            attesters=await attestation_service.load(conn),
            now_s=int(clock.real_now().timestamp()),  # a security window, like request signing's
            spent=await attestation_repository.spent_jtis(raw, campaign_id),
        )
        uses = UsesWriter(campaign_id, issuance_id, issued_at)
        if kind == "lottery":
            if applicants is None or seed is None:
                raise InvariantViolation("a lottery issuance has its applicants and its seed")
            winners, outcome.lottery = await _draw(raw, terms, gate, applicants, seed, remaining, outcome)
            uses.collect(gate)
            source: Any = winners
            checked = True
        else:
            if holders is None:
                raise InvariantViolation("a targeted issuance has its holders")
            source, checked = holders, False
        await _issue(
            raw,
            terms,
            gate,
            uses,
            issuance_id,
            source,
            issued_at,
            remaining,
            existing > 0,
            checked,
            outcome,
            progress,
            keep_voucher_ids,
        )
        await uses.write(raw)
        await repository.update_issuance(
            conn,
            issuance_id,
            status="done",
            processed=outcome.processed,
            issued=outcome.issued,
            rejected_count=outcome.rejected_count,
            rejected=outcome.rejected,
            lottery=outcome.lottery,
            updated_at=clock.now(),
            finished_at=clock.now(),
        )
    return outcome


# PostgreSQL's binary COPY format: a header, then per row a field count and (length, bytes) per field.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_FIELD_COUNT = struct.pack(">h", len(repository.VOUCHER_COPY_COLUMNS))
_NULL = struct.pack(">i", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_pack_length = struct.Struct(">i").pack


def _text(value: str) -> bytes:
    data = value.encode()
    return _pack_length(len(data)) + data


def _bigint(value: int) -> bytes:
    return struct.pack(">iq", 8, value)


def _timestamptz(value: datetime) -> bytes:
    return struct.pack(">iq", 8, (value - _PG_EPOCH) // timedelta(microseconds=1))


# A row is built as one str and a chunk encoded once as latin-1, which maps code points 0-255 to the same bytes:
# the binary parts (lengths, times) are written as such characters, every per-row text (wallet, id_hash, key,
# voucher id) is ASCII by the holder rules. One f-string per row instead of a bytes object per field.
_LENGTH = [_pack_length(n).decode("latin-1") for n in range(260)]
_NULL_FIELD = _NULL.decode("latin-1")


def _field(value: bytes) -> str:
    return value.decode("latin-1")


async def _issue(
    raw,
    terms: cache.Terms,
    gate: Gate,
    uses: UsesWriter,
    issuance_id: str,
    holders,
    issued_at: datetime,
    remaining: int,
    had_vouchers: bool,
    checked: bool,
    outcome: IssuanceTally,
    progress: Progress | None,
    keep_voucher_ids: bool,
) -> None:
    """Decide each holder in Python and stream the accepted vouchers to PostgreSQL in ONE binary COPY, so that the
    database inserts chunk k while Python decides chunk k+1 (two cores, both busy). Holders given with an
    attestation (or any holder, where the contract requires one) are decided by the gate; raw attributes are
    decided by the compiled holder check, memoised per distinct set. No attribute is written anywhere."""
    campaign_id = terms.campaign_id
    limit = terms.per_holder_limit
    check_holder = terms.contract.check_holder
    attribute_types = cache.holder_types(terms.contract)
    valid_from, valid_until = terms.window_for(issued_at)
    face = terms.face_value_fen
    # Everything a row repeats, encoded once (PostgreSQL's binary COPY: no text parsing of times and numbers).
    head = _field(_FIELD_COUNT + _text(campaign_id)) + _LENGTH[ids.VOUCHER_ID_CHARS]
    middle = _field(
        _text("issued")
        + _timestamptz(valid_from)
        + _timestamptz(valid_until)
        + _bigint(face)
        + _bigint(face)
        + _timestamptz(issued_at)
        + _text(issuance_id)
    )
    tail = _field(_bigint(1) + _timestamptz(issued_at))
    gated = gate.mandatory
    # Vouchers held per holder key: the campaign's before this issuance, then this issuance's own (exact; about
    # 150 bytes a holder, so a million-holder list stays well inside the memory budget).
    held_by = await repository.vouchers_held_by_holder(raw, campaign_id) if had_vouchers else {}
    # Per distinct attribute set: eligible or not. Looked up by the dict's identity first (the CSV reader hands out
    # one dict per distinct set; the entry keeps the dict alive, so its id cannot be reused), then by its items.
    memo: dict[tuple, bool] = {}
    by_identity: dict[int, tuple[dict, bool]] = {}
    length = _LENGTH

    def decide(attributes: dict) -> bool:
        memo_key = tuple(attributes.items())
        known = memo.get(memo_key)
        if known is None:
            known = checked or not check_holder(attributes)
            if len(memo) < 100_000:
                memo[memo_key] = known
        if len(by_identity) < 10_000:
            by_identity[id(attributes)] = (attributes, known)
        return known

    async def rows(verifier):
        nonlocal remaining
        # Attestations are verified by worker processes a chunk ahead (attestations/verifier.py): `verdicts` has
        # each token's, and the gate only settles it here (single use, decision), in holder order.
        async for chunk, verdicts in verifier.chunks(_chunks_of(holders), verify=not checked):
            invariant(len(chunk) <= ids.MAX_BLOCK, "a chunk of holders fits one block of voucher ids", len(chunk))
            stem = ids.voucher_id_stem()
            noise, width = ids.voucher_id_noise(len(chunk)), ids.VOUCHER_ID_NOISE_CHARS
            parts: list[str] = []
            for (wallet_id, id_hash, evidence), verdict in zip(chunk, verdicts):
                if checked:  # lottery winners, decided before the draw
                    pass
                elif gated or type(evidence) is str:
                    decision = gate.decide(wallet_id, id_hash, evidence, verdict)
                    if decision.code is not None:
                        failures = decision.failures
                        outcome.reject(
                            wallet_id,
                            decision.code,
                            decision.check,
                            (lambda f=failures: holder_explain(f)) if failures else None,
                        )
                        continue
                else:
                    cached = by_identity.get(id(evidence))
                    known = cached[1] if cached is not None and cached[0] is evidence else decide(evidence)
                    if not known:
                        outcome.reject(
                            wallet_id,
                            "NOT_ELIGIBLE",
                            explain=lambda e=evidence: explain_holder(check_holder(e), e, attribute_types),
                        )
                        continue
                key = f"h:{id_hash}" if id_hash else f"w:{wallet_id}"
                held = held_by.get(key, 0)
                if held >= limit:
                    outcome.reject(wallet_id, "HOLDER_LIMIT")
                    continue
                if remaining == 0:
                    outcome.reject(wallet_id, "SOLD_OUT")
                    continue
                held_by[key] = held + 1
                remaining -= 1
                hash_field = _NULL_FIELD if id_hash is None else length[len(id_hash)] + id_hash
                n = len(parts)
                parts.append(
                    f"{head}{stem}{n:06x}{noise[width * n : width * (n + 1)]}"
                    f"{length[len(wallet_id)]}{wallet_id}{hash_field}"
                    f"{length[len(key)]}{key}{middle}{tail}"
                )
            outcome.processed += len(chunk)
            uses.collect(gate)
            if parts:
                yield "".join(parts).encode("latin-1")
                outcome.issued += len(parts)
                if keep_voucher_ids:
                    outcome.voucher_ids.extend(f"{stem}{i:06x}" for i in range(len(parts)))
            if progress is not None:
                await progress(outcome.processed, outcome.issued, outcome.rejected_count)

    async with Verifier(gate) as verifier:
        produced = rows(verifier)
        finished = False

        async def segment():
            """One COPY of vouchers, until the attestations spent since the last write of their uses reach
            USES_WRITE_EVERY: their COPY then goes in between, while the verifier processes work ahead, rather than
            all at the end, when nothing else is left to run (~0.45 s of PostgreSQL's CPU for 100,000 uses)."""
            nonlocal finished
            yield _COPY_HEADER
            async for data in produced:
                yield data
                if uses.pending >= USES_WRITE_EVERY:
                    break
            else:
                finished = True
            yield _COPY_TRAILER

        while not finished:
            await repository.copy_vouchers(raw, segment())
            await uses.write(raw)
    invariant(remaining >= 0, "no more vouchers issued than the quantity", remaining)


class UsesWriter:
    """The attestations an issuance spent (`attestation_uses`), encoded for a binary COPY chunk by chunk as the gate
    accepts them (about 150 bytes each), and written by COPY in the same transaction as the vouchers, every
    USES_WRITE_EVERY of them and at the end."""

    def __init__(self, campaign_id: str, issuance_id: str, used_at: datetime) -> None:
        self.head = _field(struct.pack(">h", len(attestation_repository.USE_COPY_COLUMNS)) + _text(campaign_id))
        self.tail = _field(_text(issuance_id) + _timestamptz(used_at))
        self.parts: list[bytes] = []
        self.pending = 0  # encoded, not yet written
        self.count = 0

    def collect(self, gate: Gate) -> None:
        if not gate.uses:
            return
        length, head, tail = _LENGTH, self.head, self.tail
        rows = [
            f"{head}{length[len(u.jti.encode())]}{u.jti}{length[32]}{u.sha256.decode('latin-1')}"
            f"{length[len(u.attester_id)]}{u.attester_id}{length[16]}{u.wallet_id}{length[len(u.decision)]}{u.decision}"
            f"{tail}"
            for u in gate.uses
        ]
        # Every text here is ASCII (jti: checks.verify requires it), so the row strings encode as their bytes.
        self.parts.append("".join(rows).encode("latin-1"))
        self.pending += len(gate.uses)
        self.count += len(gate.uses)
        gate.uses.clear()

    async def write(self, raw) -> None:
        if not self.pending:
            return
        parts, self.parts, self.pending = self.parts, [], 0

        async def stream():
            yield _COPY_HEADER
            for part in parts:
                yield part
            yield _COPY_TRAILER

        await attestation_repository.copy_uses(raw, stream())


async def _draw(
    raw, terms: cache.Terms, gate: Gate, applicants: list[HolderTuple], seed: bytes, slots: int, outcome: IssuanceTally
) -> tuple[list[HolderTuple], dict[str, Any]]:
    """Run the lottery over the applicants; answers the winners (checked) and the publication."""
    by_key: dict[str, HolderTuple] = {}
    for holder in applicants:
        by_key.setdefault(lottery.applicant_key(holder[0], holder[1]), holder)
    keys = sorted(by_key)
    excluded: list[dict[str, str]] = []
    candidates: list[str] = []
    checks: dict[str, str] = {}
    async with Verifier(gate) as verifier:  # attestations by worker processes when there are many
        verdicts = await verifier.verdicts([by_key[key] for key in keys])
    for key, verdict in zip(keys, verdicts):
        wallet_id, id_hash, evidence = by_key[key]
        decision = gate.decide(wallet_id, id_hash, evidence, verdict)
        if decision.code is not None:
            excluded.append({"key": key, "code": decision.code})
            if decision.check is not None:
                checks[key] = decision.check
        else:
            candidates.append(key)
    held = await repository.vouchers_held_by_holder(raw, terms.campaign_id)
    prior = {key: held[key] for key in {lottery.holder_key_of(key) for key in candidates} if key in held}
    limit = terms.per_holder_limit
    still: list[str] = []
    for key in candidates:
        if prior.get(lottery.holder_key_of(key), 0) >= limit:
            excluded.append({"key": key, "code": "HOLDER_LIMIT"})
        else:
            still.append(key)
    # Millions of HMACs and a sort: off the event loop, so the worker keeps answering while it draws.
    winners = await asyncio.to_thread(lottery.draw, seed, still, slots, limit, prior)
    for entry in excluded:
        outcome.reject(by_key[entry["key"]][0], entry["code"], checks.get(entry["key"]))
    outcome.processed = len(applicants) - len(winners)
    publication: dict[str, Any] = {
        "algorithm": lottery.ALGORITHM,
        "description": lottery.DESCRIPTION,
        "seed": seed.hex(),
        "applicants": len(keys),
        "applicants_sha256": lottery.digest(keys),
        "excluded_count": len(excluded),
        "excluded": sorted(excluded, key=lambda e: e["key"]) if len(excluded) <= MAX_PUBLISHED_KEYS else None,
        "candidates_sha256": lottery.digest(still),
        "per_holder_limit": limit,
        "prior_vouchers": {k: v for k, v in sorted(prior.items()) if v} if len(prior) <= MAX_PUBLISHED_KEYS else None,
        "slots": slots,
        "winners_count": len(winners),
        "winners_sha256": lottery.digest(winners),
        "winners": winners if len(winners) <= MAX_PUBLISHED_KEYS else None,
        "not_drawn": len(still) - len(winners),
    }
    return [by_key[key] for key in winners], publication
