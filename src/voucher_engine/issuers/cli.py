"""`voucher-engine issuer create|show|list`: the operator registers issuers against a running service (`$VE`, with
the admin token `$ADMIN` or --token)."""

from __future__ import annotations

from typing import Annotated

import typer

from voucher_engine.web.client import AdminToken, AsJson, Url, call, show

app = typer.Typer(help="Issuers (government bodies): create, show, list.", no_args_is_help=True)


@app.command()
def create(
    url: Url,
    token: AdminToken,
    name: Annotated[str, typer.Option(help="The body's name.")],
    region: Annotated[str, typer.Option(help="Its GB/T 2260 region code (000000: the central government).")],
    as_json: AsJson = False,
) -> None:
    """Register an issuer; prints its id."""
    status, answer = call(url, token, "POST", "/v1/issuers", json_body={"name": name, "region_code": region})
    show(status, answer, as_json, f"{answer.get('id')}  {region}  {name!r}" if status < 400 else None)


@app.command("show")
def show_issuer(
    issuer_id: Annotated[str, typer.Argument(metavar="ISSUER")], url: Url, token: AdminToken, as_json: AsJson = False
) -> None:
    """An issuer, with its appropriation and what it has committed (as JSON)."""
    status, answer = call(url, token, "GET", f"/v1/issuers/{issuer_id}")
    show(status, answer, True if status < 400 else as_json)


@app.command("list")
def list_issuers(url: Url, token: AdminToken, as_json: AsJson = False) -> None:
    """Every issuer, one a line."""
    status, answer = call(url, token, "GET", "/v1/issuers", params={"limit": 1000})
    items = answer.get("items", []) if isinstance(answer, dict) else []
    show(status, answer, as_json, "\n".join(f"{i['id']}  {i['region_code']}  {i['name']!r}" for i in items))
