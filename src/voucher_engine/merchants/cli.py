"""`voucher-engine pos ...`: a signing till on the command line, for trying the service and checking integrations.

Reads the service URL and the POS key from the environment (`VE`, `KEY_ID`, `SECRET` — what `voucher-engine demo`
writes to its `demo.env`) unless given as options.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Optional

import httpx
import orjson
import typer

from voucher_engine.merchants.client import send

app = typer.Typer(help="A signing POS client: ping, quote, redeem, refund.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", envvar="VE", help="The service, e.g. http://127.0.0.1:8000.")]
KeyId = Annotated[str, typer.Option("--key-id", envvar="KEY_ID", help="The POS key id.")]
Secret = Annotated[str, typer.Option("--secret", envvar="SECRET", help="The POS key's secret (hex).")]


def _call(url: str, key_id: str, secret: str, method: str, path: str, body: bytes = b"") -> None:
    """Send a signed request and print the answer; a non-2xx answer or no answer at all exits non-zero."""
    try:
        response = send(url, key_id, secret, method, path, body)
    except httpx.HTTPError as exc:
        typer.echo(f"error: no answer from {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{response.status_code} {response.text}")
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def ping(url: Url, key_id: KeyId, secret: Secret) -> None:
    """A signed no-op: checks the key and the signing code."""
    _call(url, key_id, secret, "GET", "/v1/pos/ping")


def _payment(code: str, wallet: str, amount_fen: int, items: str | None) -> dict:
    body: dict = {"voucher_code": code, "wallet_id": wallet, "order_amount_fen": amount_fen}
    if items:
        body["items"] = orjson.loads(items)
    return body


@app.command()
def quote(
    url: Url,
    key_id: KeyId,
    secret: Secret,
    code: Annotated[str, typer.Option(help="The voucher code (the QR text).")],
    wallet: Annotated[str, typer.Option(help="The holder's 16-digit wallet id.")],
    amount_fen: Annotated[int, typer.Option(help="The order amount in fen.")],
    items: Annotated[Optional[str], typer.Option(help="Order items as JSON, where the contract needs them.")] = None,
) -> None:
    """What a redemption would do now, changing nothing."""
    body = orjson.dumps(_payment(code, wallet, amount_fen, items))
    _call(url, key_id, secret, "POST", "/v1/redemptions/quote", body)


@app.command()
def redeem(
    url: Url,
    key_id: KeyId,
    secret: Secret,
    code: Annotated[str, typer.Option(help="The voucher code (the QR text).")],
    wallet: Annotated[str, typer.Option(help="The holder's 16-digit wallet id.")],
    amount_fen: Annotated[int, typer.Option(help="The order amount in fen.")],
    pos_txn_id: Annotated[Optional[str], typer.Option(help="The till's transaction id (idempotency key).")] = None,
    items: Annotated[Optional[str], typer.Option(help="Order items as JSON, where the contract needs them.")] = None,
) -> None:
    """Redeem a voucher against an order (safe to repeat with the same --pos-txn-id)."""
    body = _payment(code, wallet, amount_fen, items)
    body["pos_txn_id"] = pos_txn_id or "cli-" + secrets.token_hex(6)
    _call(url, key_id, secret, "POST", "/v1/redemptions", orjson.dumps(body))


@app.command()
def refund(
    url: Url,
    key_id: KeyId,
    secret: Secret,
    redemption_id: Annotated[str, typer.Argument(help="The redemption to refund.")],
    amount_fen: Annotated[int, typer.Option(help="How much of the order to refund, in fen.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "customer return",
    refund_id: Annotated[Optional[str], typer.Option(help="The till's refund id (idempotency key).")] = None,
) -> None:
    """Refund part or all of a redeemed order."""
    body = {"refund_id": refund_id or "cli-" + secrets.token_hex(6), "amount_fen": amount_fen, "reason": reason}
    _call(url, key_id, secret, "POST", f"/v1/redemptions/{redemption_id}/refunds", orjson.dumps(body))
