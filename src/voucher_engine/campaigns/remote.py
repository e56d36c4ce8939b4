"""`voucher-engine campaign ...`: an officer's campaign on the command line, against a running service.

    voucher-engine campaign check dining.contract        # the checker's messages, at their lines
    voucher-engine campaign create dining.contract       # the contract file as it is: no JSON to write by hand
    voucher-engine campaign fund|activate|pause CAMPAIGN
    voucher-engine campaign close CAMPAIGN --dry-run     # what closing would do, changing nothing
    voucher-engine campaign show CAMPAIGN | list

The service is `$VE` (or --url) and the token `$GOV` (or --token, or `$VE_TOKEN`), as `demo.env` sets them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from voucher_engine.web.client import AsJson, GovToken, Url, call, show, yuan

app = typer.Typer(help="A campaign's life: check, create, fund, activate, pause, close, show.", no_args_is_help=True)
CampaignId = Annotated[str, typer.Argument(metavar="CAMPAIGN", help="The campaign's id (cmp_...).")]
ContractFile = Annotated[
    Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, readable=True, help="The contract file.")
]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        typer.echo(f"error: {path} is not UTF-8 text; save the contract as UTF-8", err=True)
        raise typer.Exit(2) from None


def _line(campaign: dict[str, Any]) -> str:
    totals = campaign.get("totals") or {}
    return f"{campaign['id']}  {campaign['status']}  {campaign['name']!r}  budget {yuan(campaign['budget_fen'])}" + (
        f"  in escrow {yuan(totals['outstanding_fen'])}" if "outstanding_fen" in totals else ""
    )


@app.command()
def check(file: ContractFile, url: Url, token: GovToken, as_json: AsJson = False) -> None:
    """Check a contract on the service (the same checker as `contract check`, with the service's registry)."""
    status, answer = call(url, token, "POST", "/v1/contracts/check", text_body=_read(file))
    warnings = answer.get("warnings") or [] if isinstance(answer, dict) else []
    lines = [f"{file}: OK"] + [f"  warning: line {w.get('line')}: {w.get('message')}" for w in warnings]
    show(status, answer, as_json, "\n".join(lines))


@app.command()
def create(file: ContractFile, url: Url, token: GovToken, as_json: AsJson = False) -> None:
    """Create a campaign (a draft) from a contract file."""
    status, answer = call(url, token, "POST", "/v1/campaigns", text_body=_read(file))
    show(status, answer, as_json, _line(answer) if status < 400 else None)


def _move(action: str, campaign_id: str, url: str, token: str, as_json: bool) -> None:
    status, answer = call(url, token, "POST", f"/v1/campaigns/{campaign_id}/{action}")
    show(status, answer, as_json, _line(answer) if status < 400 else None)


@app.command()
def fund(campaign_id: CampaignId, url: Url, token: GovToken, as_json: AsJson = False) -> None:
    """Lock the whole budget in escrow (every co-funder must have approved its share)."""
    _move("fund", campaign_id, url, token, as_json)


@app.command()
def activate(campaign_id: CampaignId, url: Url, token: GovToken, as_json: AsJson = False) -> None:
    """Start (or resume) issuing and spending."""
    _move("activate", campaign_id, url, token, as_json)


@app.command()
def pause(campaign_id: CampaignId, url: Url, token: GovToken, as_json: AsJson = False) -> None:
    """Stop issuing and spending until activated again."""
    _move("pause", campaign_id, url, token, as_json)


@app.command()
def close(
    campaign_id: CampaignId,
    url: Url,
    token: GovToken,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what closing would do; change nothing.")] = False,
    as_json: AsJson = False,
) -> None:
    """Close: revoke what is unspent (if early) and return every unspent fen to the funders in their shares."""
    if not dry_run:
        _move("close", campaign_id, url, token, as_json)
        return
    status, campaign = call(url, token, "GET", f"/v1/campaigns/{campaign_id}")
    if status >= 400:
        show(status, campaign, as_json)
    plan = close_plan(campaign)
    show(status, plan, as_json, render_plan(plan))


def close_plan(campaign: dict[str, Any]) -> dict[str, Any]:
    """What `close` would do now, from the campaign as served: the escrow returned to each funder by share (rounded
    down, the leftover fen to the first funder, as the ledger does) and the vouchers it would revoke."""
    totals = campaign.get("totals") or {}
    escrow = totals.get("outstanding_fen", 0)
    funders = campaign.get("funders") or []
    parts = [escrow * f["share_bp"] // 10000 for f in funders]
    if parts:
        parts[0] += escrow - sum(parts)
    unspent = (
        totals.get("vouchers_issued", 0)
        - totals.get("vouchers_redeemed", 0)
        - totals.get("vouchers_expired", 0)
        - totals.get("vouchers_revoked", 0)
    )
    return {
        "campaign_id": campaign["id"],
        "status": campaign["status"],
        "allowed": campaign["status"] in ("active", "paused"),
        "returned_fen": escrow,
        "returns": [
            {"issuer_id": f.get("issuer_id"), "region_code": f.get("region_code"), "amount_fen": part}
            for f, part in zip(funders, parts)
        ],
        "vouchers_revoked_if_early": max(0, unspent),
        "dry_run": True,
    }


def render_plan(plan: dict[str, Any]) -> str:
    if not plan["allowed"]:
        return f"{plan['campaign_id']} is {plan['status']}: it cannot be closed (nothing would change)"
    lines = [f"Closing {plan['campaign_id']} ({plan['status']}) would return {yuan(plan['returned_fen'])}:"]
    lines += [f"  {r['region_code'] or r['issuer_id']}: {yuan(r['amount_fen'])}" for r in plan["returns"]]
    if plan["vouchers_revoked_if_early"]:
        lines.append(
            f"  and revoke {plan['vouchers_revoked_if_early']:,} unspent vouchers if their validity has not ended"
        )
    lines.append("Nothing was changed (dry run). Run again without --dry-run to close.")
    return "\n".join(lines)


@app.command("show")
def show_campaign(campaign_id: CampaignId, url: Url, token: GovToken, as_json: AsJson = False) -> None:
    """A campaign with its totals (as JSON)."""
    status, answer = call(url, token, "GET", f"/v1/campaigns/{campaign_id}")
    show(status, answer, True if status < 400 else as_json)


@app.command("list")
def list_campaigns(url: Url, token: GovToken, as_json: AsJson = False) -> None:
    """The caller's campaigns, one a line."""
    status, answer = call(url, token, "GET", "/v1/campaigns", params={"limit": 1000})
    items = answer.get("items", []) if isinstance(answer, dict) else []
    show(status, answer, as_json, "\n".join(_line(c) for c in items) or "(no campaigns)")
