"""`/v1/webhooks` (admin: every event; gov: its own campaigns' events), and the per-worker dispatcher."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from voucher_engine.auth.dependencies import get_subject
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.web.openapi import operation
from voucher_engine.web.paging import Cursor, Limit, Page, decode_cursor, encode_cursor
from voucher_engine.web.state import AppState, State
from voucher_engine.webhooks import background, service
from voucher_engine.webhooks.schemas import Delivery, Webhook, WebhookCreate, WebhookCreated

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Caller = Annotated[Subject, Depends(get_subject)]
WebhookId = Annotated[str, Path(max_length=64)]
TASK_KEY = "webhooks.dispatcher"

_HOOK = {
    "id": "whk_5e0c2b7d9a1f3c44",
    "url": "https://gov.example.cn/ve-events",
    "events": ["redemption.settled", "refund.created"],
    "issuer_id": "iss_310000",
    "created_at": "2025-01-15T09:00:00+08:00",
    "pending": 0,
}


async def startup(state: AppState) -> None:
    from voucher_engine.observability.metrics import Metrics

    settings = state.settings
    run = background.standby if settings.webhook_dispatcher == "process" else background.in_worker
    state.extras[TASK_KEY] = asyncio.create_task(run(state.engine, settings, state.server_secret, Metrics.get()))


async def shutdown(state: AppState) -> None:
    task = state.extras.pop(TASK_KEY, None)
    if task is not None:
        task.cancel()
        # The app bounds how long a room's stop may take (api/app.py), for every room alike.
        await asyncio.gather(task, return_exceptions=True)


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    **operation(
        "Subscribe a URL to events (admin, gov)",
        "Admin: any event of any campaign. Gov: its own campaigns' events (not payouts). The URL must be http or "
        "https and, unless the service runs with VE_WEBHOOK_ALLOW_PRIVATE=1, reach only public addresses. The "
        "`secret` that signs deliveries (X-VE-Signature = hex HMAC-SHA256(secret, timestamp + newline + body)) is "
        "shown only in this answer.",
        request_example={"url": "https://gov.example.cn/ve-events", "events": ["redemption.settled", "refund.created"]},
        response_example={**_HOOK, "secret": "whsec_0Jb1n7aQm3y4Zr8s2XkLp5Vd9Hc6Tw1Ue4Gf7Ai0Bo"},
        errors=["UNAUTHENTICATED", "FORBIDDEN", "VALIDATION_ERROR", "CONFLICT"],
    ),
)
async def create_webhook(body: WebhookCreate, state: State, subject: Caller) -> WebhookCreated:
    async with state.engine.begin() as conn:
        return await service.create(
            conn,
            subject,
            body,
            server_secret=state.server_secret,
            allow_private=state.settings.webhook_allow_private,
        )


@router.get(
    "",
    response_model=Page[Webhook],
    **operation(
        "List webhooks (admin: all; gov: its own)",
        "The subscriptions, without secrets; `pending` is how many deliveries wait for a try or a retry. Paged by "
        "cursor (`limit` up to 1000).",
        response_example={"items": [_HOOK], "next_cursor": None},
        errors=["UNAUTHENTICATED", "FORBIDDEN", "VALIDATION_ERROR"],
    ),
)
async def list_webhooks(state: State, subject: Caller, limit: Limit = 100, cursor: Cursor = None) -> Page[Webhook]:
    async with state.engine.connect() as conn:
        items = await service.list_webhooks(conn, subject, after=decode_cursor(cursor), limit=limit + 1)
    page = items[:limit]
    return Page(items=page, next_cursor=encode_cursor(page[-1].id) if len(items) > limit else None)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    **operation(
        "Delete a webhook (admin, or the gov that made it)",
        "Stops deliveries at once; what was still queued for it is dropped. Its attempts log stays readable.",
        response_example=None,
        errors=["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"],
    ),
)
async def delete_webhook(webhook_id: WebhookId, state: State, subject: Caller) -> Response:
    async with state.engine.begin() as conn:
        await service.delete(conn, subject, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[Delivery],
    **operation(
        "A webhook's delivery attempts, newest first (admin, or the gov that made it)",
        "Each attempt: `{event_id, type, attempt, status_code, at, outcome}`. `outcome` is `delivered`, `retrying` "
        "or `failed`: given up, after at least 24 hours of retries (or never sent, attempt 0, because the webhook's "
        "queue was full). Paged by cursor (`limit` up to 1000).",
        response_example={
            "items": [
                {
                    "event_id": "evt_tx_0001",
                    "type": "redemption.settled",
                    "attempt": 2,
                    "status_code": 200,
                    "at": "2025-01-15T12:00:11+08:00",
                    "outcome": "delivered",
                    "error": None,
                }
            ],
            "next_cursor": None,
        },
        errors=["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "VALIDATION_ERROR"],
    ),
)
async def list_deliveries(
    webhook_id: WebhookId, state: State, subject: Caller, limit: Limit = 100, cursor: Cursor = None
) -> Page[Delivery]:
    before = decode_cursor(cursor)
    if before is not None and not before.isdigit():
        raise EngineError("VALIDATION_ERROR", "The cursor is not one this service gave out.")
    async with state.engine.connect() as conn:
        rows = await service.deliveries(
            conn, subject, webhook_id, before=int(before) if before else None, limit=limit + 1
        )
    page = rows[:limit]
    return Page(
        items=[item for _, item in page], next_cursor=encode_cursor(str(page[-1][0])) if len(rows) > limit else None
    )
