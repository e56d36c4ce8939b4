"""HTTP routes of merchant settlement: holds, payout runs and their file and confirmations, statements (admin,
auditor, and the merchant's own signed `GET /v1/pos/statement`), and clawbacks. Thin: each calls a service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from voucher_engine.auth.dependencies import Admin, require
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.merchants.dependencies import SignedCaller
from voucher_engine.merchants.schemas import MERCHANT_EXAMPLE, MERCHANT_ID_PATTERN, Merchant
from voucher_engine.settlement import clawbacks, service, statements
from voucher_engine.settlement.schemas import (
    RUN_ID_PATTERN,
    Clawback,
    ClawbackRequest,
    ConfirmationsRequest,
    ConfirmationsResult,
    HoldRequest,
    PayoutRun,
    PayoutRunRequest,
    RunPage,
    Statement,
)
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, decode_cursor, encode_cursor
from voucher_engine.web.state import State

MerchantId = Annotated[str, Path(pattern=MERCHANT_ID_PATTERN)]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN)]
RedemptionId = Annotated[str, Path(max_length=64)]
Day = Annotated[str, Query(alias="date", min_length=10, max_length=10, description="YYYY-MM-DD, China time")]
Format = Annotated[str, Query(pattern="^(json|csv)$")]
StatementReader = Annotated[Subject, Depends(require("admin", "auditor"))]
Clawer = Annotated[Subject, Depends(require("admin", "gov"))]

CSV_RESPONSE = {"content": {"text/csv": {"schema": {"type": "string"}}}}
# A day's statement as both statement routes show it in the OpenAPI document.
_STATEMENT_EXAMPLE = {
    "merchant_id": "demo-noodle-bar",
    "date": "2025-01-15",
    "opening_fen": 0,
    "closing_fen": 2000,
    "lines": [
        {
            "ledger_tx_id": "tx_01HZY3K8M2",
            "kind": "redeem",
            "at": "2025-01-15T04:00:00+00:00",
            "amount_fen": 2000,
            "redemption_id": "rdm_7f3a9c2e1b4d5a60a1b2c3d4e5f6a7b8c9d0e1f2",
            "campaign_id": "cmp_7f3a9c2e1b4d5a60",
        }
    ],
}


STATEMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The statement, as JSON or (`format=csv`) as CSV with opening and closing rows.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    404: {"description": "NOT_FOUND: no such merchant (or not visible to the caller)."},
    422: {"description": "VALIDATION_ERROR: a date that is not YYYY-MM-DD."},
}

holds = APIRouter(prefix="/v1/merchants", tags=["operator"])
runs = APIRouter(prefix="/v1/payout-runs", tags=["settlement"])
pos = APIRouter(prefix="/v1/pos", tags=["settlement"])
redemptions = APIRouter(prefix="/v1/redemptions", tags=["redemption"])


@holds.post(
    "/{merchant_id}/hold",
    response_model=Merchant,
    responses={404: {"description": "NOT_FOUND: no such merchant."}},
    **operation(
        "Put a merchant on payout hold",
        "The merchant keeps redeeming but is left out of payout runs until released. Admin only.",
        request_example={"reason": "documents under review"},
        response_example={
            **MERCHANT_EXAMPLE,
            "payout_hold": {"reason": "documents under review", "since": "2025-01-15T12:00:00+08:00"},
        },
    ),
)
async def hold_merchant(merchant_id: MerchantId, body: HoldRequest, state: State, subject: Admin) -> Merchant:
    async with state.engine.begin() as conn:
        return await service.hold(conn, subject, merchant_id, body.reason)


@holds.post(
    "/{merchant_id}/release",
    response_model=Merchant,
    responses={404: {"description": "NOT_FOUND: no such merchant."}},
    **operation(
        "Release a merchant's payout hold",
        "The next payout run pays the merchant again. Admin only; a merchant not on hold is answered as is.",
        response_example=MERCHANT_EXAMPLE,
    ),
)
async def release_merchant(merchant_id: MerchantId, state: State, subject: Admin) -> Merchant:
    async with state.engine.begin() as conn:
        return await service.release(conn, subject, merchant_id)


def _statement_response(found: Statement, format: str) -> Any:
    if format == "csv":
        name = f"statement-{found.merchant_id}-{found.date}.csv"
        return PlainTextResponse(
            statements.as_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return found


@holds.get(
    "/{merchant_id}/statement",
    response_model=Statement,
    responses=STATEMENT_RESPONSES,
    **operation(
        "A merchant's daily statement",
        "One China calendar day of `merchant:<m>`: opening + lines = closing, to the fen. Admin, or an "
        "auditor bound to no issuer (a merchant's account mixes every issuer's campaigns).",
        response_example=_STATEMENT_EXAMPLE,
    ),
)
async def merchant_statement(
    merchant_id: MerchantId, state: State, subject: StatementReader, day: Day, format: Format = "json"
) -> Any:
    if subject.role == "auditor" and subject.issuer_id is not None:
        raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r} visible to the caller")
    found = await statements.statement(state.engine, merchant_id, statements.parse_day(day))
    return _statement_response(found, format)


@pos.get(
    "/statement",
    response_model=Statement,
    responses=STATEMENT_RESPONSES,
    **operation(
        "The calling merchant's own daily statement (signed)",
        "As `GET /v1/merchants/{id}/statement`, for the merchant whose POS key signed the request.",
        response_example=_STATEMENT_EXAMPLE,
    ),
)
async def pos_statement(caller: SignedCaller, state: State, day: Day, format: Format = "json") -> Any:
    found = await statements.statement(state.engine, caller.merchant_id, statements.parse_day(day))
    return _statement_response(found, format)


# A payout run as the API answers it: the example of the run's creation and of its lookup.
_RUN_EXAMPLE: dict[str, Any] = {
    "id": "run_01HZY9",
    "cutoff": "2025-01-16T00:00:00+08:00",
    "total_fen": 2000,
    "items": [
        {
            "id": "poi_1",
            "merchant_id": "demo-noodle-bar",
            "settlement_wallet": "0012345678901234",
            "amount_fen": 2000,
            "status": "sent",
            "ledger_tx_id": "tx_01HZY9P",
        }
    ],
    "next_cursor": None,
}


@runs.post(
    "",
    status_code=201,
    response_model=PayoutRun,
    responses={422: {"description": "VALIDATION_ERROR: a cutoff without an offset, or in the future."}},
    **operation(
        "Start a payout run",
        "One item per merchant not on hold whose account holds a positive amount credited before the "
        "cutoff; each item moves that amount merchant:<m> -> payout:<m> (`payout`). A second run pays only what came "
        "since. One run at a time; the answer carries the first page of items.",
        request_example={"cutoff": "2025-01-16T00:00:00+08:00"},
        response_example=_RUN_EXAMPLE,
        errors=["CONFLICT"],
    ),
)
async def create_run(body: PayoutRunRequest, state: State, subject: Admin) -> PayoutRun:
    figures = await service.create_run(state.engine, subject, body.cutoff)
    async with state.engine.connect() as conn:
        return _encoded(await service.get_run(conn, figures.run_id))


def _encoded(run: PayoutRun) -> PayoutRun:
    if run.next_cursor is not None:
        run.next_cursor = encode_cursor(run.next_cursor)
    return run


@runs.get(
    "",
    response_model=RunPage,
    **operation(
        "List payout runs",
        "Every payout run, newest first, paged by cursor. Admin only.",
        response_example={
            "items": [{"id": "run_01HZY9", "cutoff": "2025-01-16T00:00:00+08:00", "total_fen": 2000}],
            "next_cursor": None,
        },
    ),
)
async def list_runs(state: State, _: Admin, limit: Limit = 100, cursor: Cursor = None) -> RunPage:
    async with state.engine.connect() as conn:
        items, more = await service.list_runs(conn, before=decode_cursor(cursor), limit=limit)
    return RunPage(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


@runs.get(
    "/{run_id}",
    response_model=PayoutRun,
    responses={404: {"description": "NOT_FOUND: no such run."}},
    **operation(
        "A payout run and a page of its items",
        "Admin only. Items in id order, `limit` (default 1000) at a time; `next_cursor` for more.",
        response_example=_RUN_EXAMPLE,
    ),
)
async def get_run(run_id: RunId, state: State, _: Admin, limit: Limit = 1000, cursor: Cursor = None) -> PayoutRun:
    async with state.engine.connect() as conn:
        return _encoded(await service.get_run(conn, run_id, after=decode_cursor(cursor), limit=limit))


@runs.get(
    "/{run_id}/file",
    response_class=StreamingResponse,
    responses={200: {"description": "The bank file.", **CSV_RESPONSE}, 404: {"description": "NOT_FOUND"}},
    **operation(
        "The run's instructions for the operating bank, as CSV",
        "`item_id,merchant_id,settlement_wallet,amount_fen,reference`, one row per item. Admin only.",
        response_example="item_id,merchant_id,settlement_wallet,amount_fen,reference\npoi_1,demo-noodle-bar,0012345678901234,2000,run_01HZY9/poi_1\n",
    ),
)
async def run_file(run_id: RunId, state: State, _: Admin) -> StreamingResponse:
    pages = service.file_pages(state.engine, run_id)
    first = await anext(pages)  # NOT_FOUND before the response starts

    async def body():
        yield "item_id,merchant_id,settlement_wallet,amount_fen,reference\n"
        page = first
        while True:
            yield "".join(
                f"{r['id']},{r['merchant_id']},{r['settlement_wallet']},{r['amount_fen']},{r['reference']}\n"
                for r in page
            )
            try:
                page = await anext(pages)
            except StopAsyncIteration:
                return

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="payout-{run_id}.csv"'},
    )


@runs.post(
    "/{run_id}/confirmations",
    response_model=ConfirmationsResult,
    responses={
        404: {"description": "NOT_FOUND: no such run, or an item not in it."},
        409: {"description": "INVALID_STATE: an item was already confirmed the other way."},
    },
    **operation(
        "Record the bank's answers for a run's items",
        "Idempotent per item: `paid` moves the amount payout:<m> -> settled:<m> (`payout_confirm`), "
        "`failed` back to merchant:<m> (`payout_reversal`). All or nothing: an item already confirmed the other way is "
        "INVALID_STATE and nothing is applied. Admin only.",
        request_example={"items": [{"item_id": "poi_1", "status": "paid", "bank_reference": "B20250116-0001"}]},
        response_example={
            "run_id": "run_01HZY9",
            "items": [
                {
                    "id": "poi_1",
                    "merchant_id": "demo-noodle-bar",
                    "settlement_wallet": "0012345678901234",
                    "amount_fen": 2000,
                    "status": "paid",
                    "ledger_tx_id": "tx_01HZY9P",
                }
            ],
        },
        errors=["INVALID_STATE", "CONFLICT"],
    ),
)
async def confirm(run_id: RunId, body: ConfirmationsRequest, state: State, subject: Admin) -> ConfirmationsResult:
    items = await service.confirm(state.engine, subject, run_id, body.items)
    return ConfirmationsResult(run_id=run_id, items=items)


@redemptions.post(
    "/{redemption_id}/clawback",
    status_code=201,
    response_model=Clawback,
    responses={
        200: {"model": Clawback, "description": "A retry: the original clawback."},
        404: {"description": "NOT_FOUND: no such redemption visible to the caller."},
        409: {"description": "INVALID_STATE: refunds already took back the whole subsidy."},
    },
    **operation(
        "Claw back a redemption's subsidy",
        "Takes the subsidy still standing (less what refunds took back) from the merchant back to the "
        "campaign's escrow (`clawback`), straight on to the funders if the campaign is closed (a `return`). The "
        "redemption becomes `clawed_back`. Idempotent: a second call answers the same clawback (200). Admin, or the gov "
        "of the campaign's issuer. A merchant already paid out goes below zero; the next payout nets it.",
        request_example={"reason": "fraud confirmed"},
        response_example={
            "redemption_id": "rdm_7f3a9c2e1b4d5a60a1b2c3d4e5f6a7b8c9d0e1f2",
            "amount_fen": 2000,
            "reason": "fraud confirmed",
            "ledger_tx_id": "tx_01HZYA",
            "created_at": "2025-01-20T10:00:00+08:00",
        },
        errors=["INVALID_STATE"],
    ),
)
async def claw_back(
    redemption_id: RedemptionId, body: ClawbackRequest, state: State, subject: Clawer, response: Response
) -> Clawback:
    result, created = await clawbacks.claw_back(state.engine, subject, redemption_id, body.reason)
    response.status_code = 201 if created else 200
    return result


routers = [holds, runs, pos, redemptions]
