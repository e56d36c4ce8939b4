"""`/v1/ledger/...` for auditors (all issuers, or the one they are bound to) and gov (its own campaigns only).

Thin: each endpoint checks scope (scoping.py) and calls the service or the repository. Lists page by seq.
`startup` runs the sequencer and the periodic checkpointer in every worker (one of them works at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from voucher_engine.auth.dependencies import require
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.ledger import background, checkpoints, export, model, repository, scoping, sequencer, service
from voucher_engine.ledger.schemas import (
    AccountOut,
    CheckpointOut,
    CheckpointPage,
    ConsistencyProof,
    InclusionProof,
    PublicKey,
    Reconciliation,
    TransactionOut,
    TransactionPage,
    VoucherTrace,
)
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, encode_cursor
from voucher_engine.web.state import AppState, State

log = logging.getLogger("voucher_engine.ledger")

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
public_router = APIRouter(prefix="/v1/ledger", tags=["ledger"])

Reader = Annotated[Subject, Depends(require("auditor", "gov"))]
# Signing a checkpoint on demand writes (it sequences and signs): the operator's; auditors are read-only.
Signer = Annotated[Subject, Depends(require("admin"))]
Id = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
AccountName = Annotated[str, Path(max_length=80, pattern=model.ACCOUNT_PATTERN.pattern)]
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]")
FilterId = Annotated[str | None, Query(min_length=1, max_length=128)]
Size = Annotated[int | None, Query(ge=1, le=(1 << 62))]

STATE_KEY = "ledger"


def _key(state: AppState):
    key = state.extras.get("ledger_signing_key")
    if key is None:
        key = checkpoints.load_signing_key(state.settings.resolved_signing_key_path)
        state.extras["ledger_signing_key"] = key
    return key


def _after(cursor: str | None) -> int:
    value = decode_cursor(cursor)
    if value is None:
        return 0
    if not value.isdigit() or len(value) > 19:
        raise EngineError("VALIDATION_ERROR", "The cursor is not one this service gave out.")
    return int(value)


def _page(rows, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    items = [service.served_row(row) for row in rows[:limit]]
    return items, encode_cursor(str(items[-1]["seq"])) if len(rows) > limit else None


async def _scope_filters(conn, subject: Subject, campaign_id: str | None) -> None:
    if scoping.sees_everything(subject):
        return
    if campaign_id is None:
        raise EngineError("FORBIDDEN", "gov and issuer-bound auditors list the ledger by campaign: add campaign_id")
    await scoping.require_campaign(conn, subject, campaign_id)


def _window(at_from: datetime | None, at_to: datetime | None) -> None:
    if at_from is not None and at_to is not None and at_to < at_from:
        raise EngineError("VALIDATION_ERROR", "`to` is before `from`")


# One sequenced transaction as the ledger serves it: the example of every list and lookup below.
_TX_EXAMPLE: dict[str, Any] = {
    "id": "tx_01HZY3K8M2",
    "seq": 42,
    "kind": "redeem",
    "at": "2025-01-15T04:00:00.000000+00:00",
    "postings": [
        {"account": "escrow:cmp_7f3a9c2e1b4d5a60", "credit_fen": 2000},
        {"account": "merchant:demo-noodle-bar", "debit_fen": 2000},
    ],
    "refs": {
        "campaign_id": "cmp_7f3a9c2e1b4d5a60",
        "voucher_id": "vch_7f3a9c2e1b4d5a6001",
        "redemption_id": "rdm_7f3a9c2e1b4d5a60a1b2c3d4e5f6a7b8c9d0e1f2",
        "merchant_id": "demo-noodle-bar",
    },
    "hash": "5be1…c0",
    "prev_hash": "a9d4…11",
}


@router.get(
    "/transactions",
    response_model=TransactionPage,
    **operation(
        "Ledger transactions (auditor; gov: its own campaigns)",
        "Sequenced double-entry transactions in `seq` order, filtered by campaign, merchant, voucher or time; each with its hash-chain fields. A committed transaction appears within about a second.",
        response_example={
            "items": [_TX_EXAMPLE],
            "next_cursor": None,
        },
    ),
)
async def list_transactions(
    state: State,
    subject: Reader,
    campaign_id: FilterId = None,
    merchant_id: FilterId = None,
    voucher_id: FilterId = None,
    at_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    at_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Sequenced transactions in seq order, filtered by campaign, merchant, voucher and time (`from` <= at < `to`)."""
    _window(at_from, at_to)
    async with state.engine.connect() as conn:
        await _scope_filters(conn, subject, campaign_id)
        rows = await repository.sequenced_transactions(
            conn,
            campaign_id=campaign_id,
            merchant_id=merchant_id,
            voucher_id=voucher_id,
            at_from=at_from,
            at_to=at_to,
            after_seq=_after(cursor),
            limit=limit + 1,
        )
    items, next_cursor = _page(rows, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/transactions/{tx_id}",
    response_model=TransactionOut,
    **operation(
        "One ledger transaction",
        "By id; `seq` is null until the sequencer has placed it.",
        response_example=_TX_EXAMPLE,
    ),
)
async def get_transaction(tx_id: Id, state: State, subject: Reader) -> dict[str, Any]:
    async with state.engine.connect() as conn:
        row = await _visible_transaction(conn, subject, tx_id)
    return service.served_row(row)


async def _visible_transaction(conn, subject: Subject, tx_id: str):
    """The sequenced transaction, or NOT_FOUND: the same answer, word for word, whether it does not exist or is
    another issuer's (whose existence is none of the caller's business)."""
    row = await repository.transaction_by_id(conn, tx_id)
    if row is None or row["seq"] is None or not await scoping.can_see_campaign(conn, subject, row["campaign_id"]):
        raise EngineError("NOT_FOUND", f"no sequenced ledger transaction {tx_id!r}")
    return row


@router.get(
    "/accounts/{account}",
    response_model=AccountOut,
    **operation(
        "An account's balance and transactions",
        "`fiscal:<issuer>`, `escrow:<campaign>`, `merchant:<m>`, `payout:<m>`, `settled:<m>`. `balance_fen` is money in minus money out.",
        response_example={
            "account": "escrow:cmp_7f3a9c2e1b4d5a60",
            "balance_fen": 999998000,
            "items": [_TX_EXAMPLE],
            "next_cursor": None,
        },
    ),
)
async def get_account(
    account: AccountName, state: State, subject: Reader, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """The balance (every committed posting) and the history (sequenced transactions, seq order)."""
    async with state.engine.connect() as conn:
        await scoping.require_account(conn, subject, account)
        balance_fen = await service.balance(conn, account)
        rows = await repository.sequenced_transactions(conn, account=account, after_seq=_after(cursor), limit=limit + 1)
    items, next_cursor = _page(rows, limit)
    return {"account": account, "balance_fen": balance_fen, "items": items, "next_cursor": next_cursor}


@router.get(
    "/vouchers/{voucher_id}/trace",
    response_model=VoucherTrace,
    **operation(
        "A voucher's money trail",
        "Every transaction that moved this voucher's money, from funding to settlement or return.",
        response_example={
            "voucher_id": "vch_7f3a9c2e1b4d5a6001",
            "campaign_id": "cmp_7f3a9c2e1b4d5a60",
            "items": [_TX_EXAMPLE],
        },
    ),
)
async def trace_voucher(
    voucher_id: Id, state: State, subject: Reader, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """The campaign's funding, every transaction of this voucher (redeem, refund), and the campaign's return."""
    after = _after(cursor)
    async with state.engine.connect() as conn:
        campaigns = await repository.voucher_campaigns(conn, voucher_id)
        if not campaigns:
            found = await scoping.voucher_campaign(conn, voucher_id)
            campaigns = [found] if found else []
        # The same answer, word for word, for a voucher that does not exist and for another issuer's.
        visible = [await scoping.can_see_campaign(conn, subject, campaign_id) for campaign_id in campaigns]
        if not campaigns or not all(visible):
            raise EngineError("NOT_FOUND", f"no voucher {voucher_id!r} in the ledger")
        rows = await repository.sequenced_transactions(conn, voucher_id=voucher_id, limit=None)
        for campaign_id in campaigns:
            rows.extend(await repository.campaign_fund_and_return(conn, campaign_id))
    rows = sorted((row for row in rows if row["seq"] > after), key=lambda row: row["seq"])[: limit + 1]
    items, next_cursor = _page(rows, limit)
    return {"voucher_id": voucher_id, "campaign_id": campaigns[0], "items": items, "next_cursor": next_cursor}


@router.get(
    "/campaigns/{campaign_id}/reconciliation",
    response_model=Reconciliation,
    **operation(
        "A campaign's books",
        "funded = escrow balance + (redeemed − refunded − clawed back) + returned, in total and per funder, with `balanced`.",
        response_example={
            "campaign_id": "cmp_7f3a9c2e1b4d5a60",
            "funded_fen": 1000000000,
            "escrow_fen": 999998000,
            "redeemed_fen": 2000,
            "refunded_fen": 0,
            "clawed_back_fen": 0,
            "returned_fen": 0,
            "balanced": True,
            "funders": [],
        },
    ),
)
async def reconciliation(campaign_id: Id, state: State, subject: Reader) -> dict[str, Any]:
    async with state.engine.begin() as conn:
        await scoping.require_campaign(conn, subject, campaign_id)
        return await service.reconcile(conn, campaign_id)


@router.get(
    "/checkpoints/latest",
    response_model=CheckpointOut,
    **operation(
        "The newest signed checkpoint",
        "The tree size and root hash, signed with Ed25519 (C2SP checkpoint text in `body`). Verify against the key pinned from `/v1/ledger/public-key`.",
        response_example={
            "origin": "voucher-engine/ledger",
            "tree_size": 1024,
            "root_hash": "9f2c…e1",
            "body": "voucher-engine/ledger\n1024\nnyxs…4Q=\n",
            "signature": "MEUC…==",
            "public_key": "3q2+7w…=",
            "signed_at": "2025-01-15T04:00:00+00:00",
        },
    ),
)
async def latest_checkpoint(state: State, _: Reader) -> dict[str, Any]:
    """A checkpoint of everything sequenced: the newest stored one, or one signed now if the log has grown since."""
    async with state.engine.connect() as conn:
        found = await service.get_checkpoint(conn)
        size = await service.tree_size(conn)
    if found is None or found.tree_size < size:
        found = await service.checkpoint_now(state.engine, _key(state))
    if found is None:
        raise EngineError("NOT_FOUND", "the ledger is empty: there is nothing to sign yet")
    return found.document()


@router.get(
    "/checkpoints",
    response_model=CheckpointPage | CheckpointOut,
    **operation(
        "Checkpoints, or the one at a tree size",
        "With `tree_size=N`: the checkpoint of that size; without: a page of checkpoints.",
        response_example={
            "origin": "voucher-engine/ledger",
            "tree_size": 1024,
            "root_hash": "9f2c…e1",
            "body": "voucher-engine/ledger\n1024\nnyxs…4Q=\n",
            "signature": "MEUC…==",
            "public_key": "3q2+7w…=",
            "signed_at": "2025-01-15T04:00:00+00:00",
        },
    ),
)
async def checkpoints_at(
    state: State, _: Reader, tree_size: Size = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """`?tree_size=N`: the checkpoint at N (signed now if none was yet); without it, the checkpoints, newest first."""
    if tree_size is not None:
        return (await _checkpoint_at(state, tree_size)).document()
    before = _after(cursor) or (1 << 62)
    async with state.engine.connect() as conn:
        rows = await repository.checkpoints_before(conn, before, limit + 1)
    items = [service._checkpoint_from_row(row).document() for row in rows[:limit]]
    return {"items": items, "next_cursor": encode_cursor(str(items[-1]["tree_size"])) if len(rows) > limit else None}


@router.post(
    "/checkpoints",
    response_model=CheckpointOut,
    status_code=201,
    **operation(
        "Sign a checkpoint now (admin)",
        "Sequences everything committed and signs the head, rather than waiting for the periodic checkpoint. "
        "Admin only: it writes, and auditors are read-only.",
        response_example={
            "origin": "voucher-engine/ledger",
            "tree_size": 1024,
            "root_hash": "9f2c…e1",
            "body": "voucher-engine/ledger\n1024\nnyxs…4Q=\n",
            "signature": "MEUC…==",
            "public_key": "3q2+7w…=",
            "signed_at": "2025-01-15T04:00:00+00:00",
        },
    ),
)
async def make_checkpoint(state: State, _: Signer) -> dict[str, Any]:
    """Sequence everything committed and sign the head now (an extension: on-demand checkpoints)."""
    found = await service.checkpoint_now(state.engine, _key(state))
    if found is None:
        raise EngineError("NOT_FOUND", "the ledger is empty: there is nothing to sign yet")
    return found.document()


async def _checkpoint_at(state: AppState, size: int) -> checkpoints.Checkpoint:
    async with state.engine.begin() as conn:
        found = await service.make_checkpoint(conn, _key(state), size)
    assert found is not None
    return found


@router.get(
    "/transactions/{tx_id}/proof",
    response_model=InclusionProof,
    **operation(
        "Inclusion proof of a transaction",
        "RFC 6962 §2.1.1 audit path from the transaction's leaf to the root of the checkpoint at `tree_size` (default: the latest).",
        response_example={
            "leaf_index": 41,
            "tree_size": 1024,
            "leaf_hash": "77ab…",
            "audit_path": ["c3d4…", "19ef…"],
            "checkpoint": {
                "origin": "voucher-engine/ledger",
                "tree_size": 1024,
                "root_hash": "9f2c…e1",
                "body": "voucher-engine/ledger\n1024\nnyxs…4Q=\n",
                "signature": "MEUC…==",
                "public_key": "3q2+7w…=",
                "signed_at": "2025-01-15T04:00:00+00:00",
            },
        },
    ),
)
async def inclusion_proof(tx_id: Id, state: State, subject: Reader, tree_size: Size = None) -> dict[str, Any]:
    """RFC 6962 inclusion proof of the transaction in the tree of `tree_size` (default: the latest checkpoint)."""
    async with state.engine.connect() as conn:
        row = await _visible_transaction(conn, subject, tx_id)
    if tree_size is None:
        async with state.engine.connect() as conn:
            latest = await service.get_checkpoint(conn)
        if latest is None or latest.tree_size < row["seq"]:
            latest = await service.checkpoint_now(state.engine, _key(state))
        assert latest is not None
        checkpoint = latest
    else:
        if tree_size < row["seq"]:
            raise EngineError("VALIDATION_ERROR", f"transaction seq {row['seq']} is not in a tree of {tree_size}")
        checkpoint = await _checkpoint_at(state, tree_size)
    async with state.engine.connect() as conn:
        path = await service.inclusion_path(conn, row["seq"] - 1, checkpoint.tree_size)
    return {
        "leaf_index": row["seq"] - 1,
        "tree_size": checkpoint.tree_size,
        "leaf_hash": bytes(row["leaf_hash"]).hex(),
        "audit_path": [node.hex() for node in path],
        "checkpoint": checkpoint.document(),
    }


@router.get(
    "/consistency",
    response_model=ConsistencyProof,
    **operation(
        "Consistency proof between two tree sizes",
        "RFC 6962 §2.1.2: proves the tree of size `to` extends the one of size `from` (nothing rewritten).",
        response_example={"first": 512, "second": 1024, "path": ["aa01…", "bb02…"]},
    ),
)
async def consistency_proof(
    state: State,
    _: Reader,
    first: Annotated[int, Query(alias="from", ge=1, le=1 << 62)],
    second: Annotated[int, Query(alias="to", ge=1, le=1 << 62)],
) -> dict[str, Any]:
    """RFC 6962 consistency proof that the tree of `from` leaves is a prefix of the tree of `to` leaves."""
    if second < first:
        raise EngineError("VALIDATION_ERROR", "`to` must be at least `from`")
    async with state.engine.connect() as conn:
        size = await service.tree_size(conn)
        if second > size:
            raise EngineError("NOT_FOUND", f"the ledger has {size} sequenced transactions, not {second}")
        path = await service.consistency_path(conn, first, second)
    return {"first": first, "second": second, "path": [node.hex() for node in path]}


# Declared so that the served OpenAPI says what the route answers (CSV, not JSON): contract tests check the
# content type of every response against it.
@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The matching transactions as CSV with a header line, in seq order.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
    **operation(
        "Export transactions as CSV",
        "Streamed, in `seq` order (optionally one campaign's); `voucher-engine ledger verify --csv` checks it offline.",
        response_example="seq,id,kind,at,postings,refs,hash,prev_hash\n1,tx_…,fund,…\n",
    ),
)
async def export_csv(
    state: State,
    subject: Reader,
    campaign_id: FilterId = None,
    merchant_id: FilterId = None,
    voucher_id: FilterId = None,
    at_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    at_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    format: Annotated[str, Query(pattern="^csv$")] = "csv",
) -> StreamingResponse:
    """The matching transactions as CSV (seq,id,kind,at,postings,refs,hash,prev_hash), streamed."""
    _window(at_from, at_to)
    async with state.engine.connect() as conn:
        await _scope_filters(conn, subject, campaign_id)
    # A header is latin-1 without control characters: an id that is neither (ids are opaque, so anything may be
    # asked for) would fail the answer after it was decided, so the file name keeps only the safe characters.
    name = f"ledger-{_SAFE_FILENAME.sub('_', campaign_id or 'all')}.csv"
    return StreamingResponse(
        export.csv_chunks(
            state.engine,
            campaign_id=campaign_id,
            merchant_id=merchant_id,
            voucher_id=voucher_id,
            at_from=at_from,
            at_to=at_to,
        ),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@public_router.get(
    "/public-key",
    response_model=PublicKey,
    **operation(
        "The checkpoint signing key",
        "Ed25519 public key (base64 raw and PEM) for auditors to pin. No credentials needed.",
        response_example={
            "public_key": "3q2+7w…=",
            "pem": "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n",
            "algorithm": "Ed25519",
        },
    ),
)
async def public_key(state: State) -> dict[str, Any]:
    """The checkpoint signing key, for auditors to pin (public: no credential needed)."""
    raw = checkpoints.raw_public_key(_key(state))
    origin = checkpoints.origin()
    import base64

    return {
        "public_key": base64.b64encode(raw).decode(),
        "algorithm": "Ed25519",
        "pem": checkpoints.public_key_pem(raw),
        "origin": origin,
        "note_verifier_key": checkpoints.note_verifier_key(origin, raw),
    }


# -- background work ------------------------------------------------------------------------------------------------


async def startup(state: AppState) -> None:
    """Start this worker's sequencer loop (background.py says when it is only a standby); it also signs a
    checkpoint every CHECKPOINT_INTERVAL_S if the tree grew."""
    hook = background.periodic_checkpoint(state.engine, _key(state))
    state.extras[STATE_KEY] = asyncio.create_task(
        sequencer.run_forever(state.engine, hook, interval_s=background.worker_interval_s(state.settings))
    )


async def shutdown(state: AppState) -> None:
    task = state.extras.pop(STATE_KEY, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
