"""The smallest ASGI app that answers like a till's redemption: the yardstick `harness.http_floor_us` serves with
uvicorn.

It reads the request's body and answers a JSON body of a redemption's size, and nothing else, so the server's CPU per
request is uvicorn's own (HTTP parsing, the event loop, the socket) on this machine at this hour: the floor under
every figure the service's worker gives, measured the same way.
"""

from __future__ import annotations

import json

_ANSWER = json.dumps(
    {
        "redemption_id": "rd_" + "0" * 26,
        "status": "settled",
        "campaign_id": "cp_" + "0" * 26,
        "voucher_id": "vc_" + "0" * 26,
        "merchant_id": "load-noodles",
        "pos_txn_id": "p" * 24,
        "order_amount_fen": 12000,
        "subsidy_fen": 2000,
        "payable_fen": 10000,
        "settled_at": "2026-12-03T14:00:00Z",
    }
).encode()
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_ANSWER)).encode())]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 200 if scope["method"] == "GET" else 201  # GET: the harness's readiness probe
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _ANSWER})
