"""`voucher-engine merchant put|show|list|suspend|resume` and `voucher-engine key create|revoke`: the operator's
merchant registry and POS keys against a running service (`$VE`, with the admin token `$ADMIN` or --token)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from voucher_engine.web.client import AdminToken, AsJson, Url, call, show

merchant_app = typer.Typer(help="Merchants: put, show, list, suspend, resume.", no_args_is_help=True)
key_app = typer.Typer(help="POS keys: create (prints the secret once), revoke.", no_args_is_help=True)
MerchantId = Annotated[str, typer.Argument(metavar="MERCHANT", help="The merchant's id.")]


def _line(m: dict) -> str:
    return f"{m['id']}  {m.get('status', '')}  {m['mcc']}  {m['region_code']}  {m['name']!r}  tags={m.get('tags', [])}"


@merchant_app.command()
def put(
    merchant_id: MerchantId,
    url: Url,
    token: AdminToken,
    name: Annotated[str, typer.Option(help="Its name.")],
    mcc: Annotated[str, typer.Option(help="Four-digit merchant category code, e.g. 5812.")],
    region: Annotated[str, typer.Option(help="Its GB/T 2260 region code, e.g. 310104.")],
    wallet: Annotated[str, typer.Option(help="The 16-digit e-CNY wallet it is paid into.")],
    tag: Annotated[Optional[list[str]], typer.Option(help="A tag (repeatable), e.g. ecny-signed.")] = None,
    as_json: AsJson = False,
) -> None:
    """Create or update a merchant in the registry (what contracts see at the till)."""
    body = {"name": name, "mcc": mcc, "region_code": region, "settlement_wallet": wallet, "tags": tag or []}
    status, answer = call(url, token, "PUT", f"/v1/merchants/{merchant_id}", json_body=body)
    show(status, answer, as_json, _line(answer) if status < 400 else None)


@merchant_app.command("show")
def show_merchant(merchant_id: MerchantId, url: Url, token: AdminToken, as_json: AsJson = False) -> None:
    """A merchant (as JSON)."""
    status, answer = call(url, token, "GET", f"/v1/merchants/{merchant_id}")
    show(status, answer, True if status < 400 else as_json)


@merchant_app.command("list")
def list_merchants(url: Url, token: AdminToken, as_json: AsJson = False) -> None:
    """Every merchant, one a line."""
    status, answer = call(url, token, "GET", "/v1/merchants", params={"limit": 1000})
    items = answer.get("items", []) if isinstance(answer, dict) else []
    show(status, answer, as_json, "\n".join(_line(m) for m in items))


@merchant_app.command()
def suspend(merchant_id: MerchantId, url: Url, token: AdminToken, as_json: AsJson = False) -> None:
    """Refuse the merchant's tills until resumed."""
    status, answer = call(url, token, "POST", f"/v1/merchants/{merchant_id}/suspend")
    show(status, answer, as_json, _line(answer) if status < 400 else None)


@merchant_app.command()
def resume(merchant_id: MerchantId, url: Url, token: AdminToken, as_json: AsJson = False) -> None:
    """Serve the merchant's tills again."""
    status, answer = call(url, token, "POST", f"/v1/merchants/{merchant_id}/resume")
    show(status, answer, as_json, _line(answer) if status < 400 else None)


@key_app.command("create")
def create_key(merchant_id: MerchantId, url: Url, token: AdminToken, as_json: AsJson = False) -> None:
    """Make a POS key; prints `export KEY_ID=... SECRET=...` for the till (the secret is shown only this once)."""
    status, answer = call(url, token, "POST", f"/v1/merchants/{merchant_id}/keys")
    summary = f"export KEY_ID={answer.get('key_id')} SECRET={answer.get('secret')}" if status < 400 else None
    show(status, answer, as_json, summary)


@key_app.command("revoke")
def revoke_key(
    merchant_id: MerchantId,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID")],
    url: Url,
    token: AdminToken,
    as_json: AsJson = False,
) -> None:
    """Revoke a POS key at once."""
    status, answer = call(url, token, "DELETE", f"/v1/merchants/{merchant_id}/keys/{key_id}")
    show(status, answer if answer else {"revoked": key_id}, as_json, f"revoked {key_id}" if status < 400 else None)
