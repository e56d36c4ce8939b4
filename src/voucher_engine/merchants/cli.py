"""`voucher-engine pos ...`: a signing till on the command line, for trying the service and checking integrations.

Reads the service URL and the POS key from the environment (`VE`, `KEY_ID`, `SECRET` — what `voucher-engine demo`
writes to its `demo.env`) unless given as options.

Every command that changes something takes its idempotency key from the caller (`--pos-txn-id`, `--refund-id`),
never invents one: the same command run again after a lost answer is then a retry that answers the first
redemption or refund, not a second one.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional
from urllib.parse import quote as urlquote

import httpx
import orjson
import typer

from voucher_engine.merchants.client import send

app = typer.Typer(help="A signing POS client: ping, quote, redeem, refund.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", envvar="VE", help="The service, e.g. http://127.0.0.1:8000.")]
KeyId = Annotated[str, typer.Option("--key-id", envvar="KEY_ID", help="The POS key id.")]
Secret = Annotated[str, typer.Option("--secret", envvar="SECRET", help="The POS key's secret (hex).")]
Json = Annotated[
    bool, typer.Option("--json", help="Print only the answer's JSON body on standard output (for jq and scripts).")
]
TXN_HELP = "The till's transaction id: the idempotency key. Run again with the same id to retry safely."


def _call(url: str, key_id: str, secret: str, method: str, path: str, body: bytes = b"", as_json: bool = False):
    """Send a signed request and print the answer; a non-2xx answer or no answer at all exits non-zero.

    Without --json the status goes first on its own line and the body follows, indented; with --json only the body
    is printed (the status is the exit code: 0 for 2xx, 1 for a refusal)."""
    try:
        response = send(url, key_id, secret, method, path, body)
    except httpx.HTTPError as exc:
        typer.echo(f"error: no answer from {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        document = response.json()
    except ValueError:
        document = None
    if as_json:
        sys.stdout.write((orjson.dumps(document).decode() if document is not None else response.text) + "\n")
    else:
        typer.echo(f"HTTP {response.status_code} {response.reason_phrase}")
        typer.echo(
            orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() if document is not None else response.text
        )
        if document and response.status_code >= 400:
            _hint(document)
    if response.status_code >= 400:
        raise typer.Exit(1)
    return document


def _hint(problem: dict) -> None:
    """One line for people, where a problem's members say what to do next."""
    if problem.get("code") == "IDEMPOTENCY_CONFLICT" and problem.get("fields"):
        typer.echo(f"hint: differs from the first request in: {', '.join(problem['fields'])}", err=True)
    if problem.get("code") == "VOUCHER_ALREADY_REDEEMED" and problem.get("redemption_id"):
        typer.echo(
            f"hint: you redeemed it already: redemption {problem['redemption_id']}"
            f" (pos_txn_id {problem.get('pos_txn_id')})",
            err=True,
        )


@app.command()
def ping(url: Url, key_id: KeyId, secret: Secret, as_json: Json = False) -> None:
    """A signed no-op: checks the key and the signing code."""
    _call(url, key_id, secret, "GET", "/v1/pos/ping", as_json=as_json)


def _payment(code: str, wallet: str, amount_fen: int, items: str | None) -> dict:
    body: dict = {"voucher_code": code, "wallet_id": wallet, "order_amount_fen": amount_fen}
    if items:
        try:
            body["items"] = orjson.loads(items)
        except orjson.JSONDecodeError as exc:
            typer.echo(f"error: --items is not JSON: {exc}", err=True)
            raise typer.Exit(2) from None
    return body


@app.command()
def quote(
    url: Url,
    key_id: KeyId,
    secret: Secret,
    code: Annotated[str, typer.Option(help="The voucher code (the QR text).")],
    wallet: Annotated[str, typer.Option(help="The holder's 16-digit wallet id.")],
    amount_fen: Annotated[int, typer.Option(help="The order amount in fen.")],
    items: Annotated[
        Optional[str],
        typer.Option(help='Order items as JSON: [{"sku","category","amount_fen","attributes":{...}}].'),
    ] = None,
    as_json: Json = False,
) -> None:
    """What a redemption would do now, changing nothing."""
    body = orjson.dumps(_payment(code, wallet, amount_fen, items))
    _call(url, key_id, secret, "POST", "/v1/redemptions/quote", body, as_json)


@app.command()
def redeem(
    url: Url,
    key_id: KeyId,
    secret: Secret,
    code: Annotated[str, typer.Option(help="The voucher code (the QR text).")],
    wallet: Annotated[str, typer.Option(help="The holder's 16-digit wallet id.")],
    amount_fen: Annotated[int, typer.Option(help="The order amount in fen.")],
    pos_txn_id: Annotated[str, typer.Option(help=TXN_HELP)],
    items: Annotated[
        Optional[str],
        typer.Option(help='Order items as JSON: [{"sku","category","amount_fen","attributes":{...}}].'),
    ] = None,
    as_json: Json = False,
) -> None:
    """Redeem a voucher against an order (safe to repeat with the same --pos-txn-id)."""
    body = _payment(code, wallet, amount_fen, items)
    body["pos_txn_id"] = pos_txn_id
    _call(url, key_id, secret, "POST", "/v1/redemptions", orjson.dumps(body), as_json)


@app.command()
def refund(
    url: Url,
    key_id: KeyId,
    secret: Secret,
    amount_fen: Annotated[int, typer.Option(help="How much of the order to refund, in fen.")],
    refund_id: Annotated[
        str, typer.Option(help="The till's refund id: the idempotency key. Run again with the same id to retry.")
    ],
    redemption_id: Annotated[
        Optional[str], typer.Argument(help="The redemption to refund (or give --pos-txn-id instead).")
    ] = None,
    pos_txn_id: Annotated[
        Optional[str], typer.Option(help="Find the redemption by the till transaction id it was made with.")
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why (part of the request: a retry must give the same).")
    ] = "customer return",
    as_json: Json = False,
) -> None:
    """Refund part or all of a redeemed order (safe to repeat with the same --refund-id)."""
    if (redemption_id is None) == (pos_txn_id is None):
        typer.echo("error: give the redemption id or --pos-txn-id (one of them)", err=True)
        raise typer.Exit(2)
    if redemption_id is None:
        found = send(url, key_id, secret, "GET", f"/v1/redemptions?pos_txn_id={urlquote(pos_txn_id or '')}")
        items = found.json().get("items") if found.status_code == 200 else None
        if not items:
            typer.echo(
                f"error: no redemption of this merchant has pos_txn_id {pos_txn_id!r} ({found.status_code})", err=True
            )
            raise typer.Exit(1)
        redemption_id = items[0]["id"]
    body = {"refund_id": refund_id, "amount_fen": amount_fen, "reason": reason}
    _call(url, key_id, secret, "POST", f"/v1/redemptions/{redemption_id}/refunds", orjson.dumps(body), as_json)
