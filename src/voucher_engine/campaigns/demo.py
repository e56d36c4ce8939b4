"""The demo's campaign: Shanghai dining vouchers (满减, spend ¥100 get ¥20 off), valid from today for 90 days,
funded, active, with one voucher issued to wallet 0000000000000001. Idempotent: found again by name."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine import clock
from voucher_engine.auth.subjects import Subject
from voucher_engine.campaigns import codes, ids, issuance, repository, service
from voucher_engine.secrets_store import load_server_secret

DEMO_NAME = "Shanghai dining demo"
DEMO_WALLET = "0000000000000001"
DEMO_HOLDER = {"age": 30, "residence_region": "310104"}


def demo_contract(today) -> str:
    until = today + timedelta(days=89)
    return f"""# A demo of the contract language: Shanghai dining vouchers (满减).
campaign "{DEMO_NAME}" issuer 310000

budget ¥20,000
funders {{
    310000: 100%
}}

voucher threshold: spend ¥100, get ¥20 off
quantity 1,000
limit 1 per holder
distribution targeted

valid from {today.isoformat()} to {until.isoformat()} China time

holder {{
    age >= 18
    residence_region within 310000
}}

payment {{
    merchant.mcc in {{"5812", "5813", "5814"}}
    merchant.region within 310000
}}
"""


async def seed(engine: AsyncEngine, issuer_id: str, settings: Any) -> dict:
    """Create (or find) the demo campaign, fund and activate it, issue the demo voucher; answer what to print."""
    gov = Subject(role="gov", token_id="demo", issuer_id=issuer_id, issuer_region="310000")
    today = clock.now().astimezone(clock.CHINA_TZ).date()
    async with engine.begin() as conn:
        row = await repository.find_by_name(conn, issuer_id, DEMO_NAME)
        if row is None or row.status == "closed" or (row.valid_until is not None and row.valid_until <= clock.now()):
            campaign_id = (await service.create(conn, gov, demo_contract(today))).id
        else:
            campaign_id = row.id
    for action, needs in (("fund", "draft"), ("activate", "funded")):
        async with engine.begin() as conn:
            current = await repository.get_campaign(conn, campaign_id)
            if current is not None and current.status == needs:
                await service.transition(conn, gov, campaign_id, action)
    # A restarted demo must print a voucher that can still be spent: the one issued last time if it is unspent,
    # else a fresh one for the next demo wallet (one voucher per holder).
    async with engine.connect() as conn:
        found = await repository.latest_demo_voucher(conn, campaign_id)
    if found is None or found[2] != "issued":
        wallet_id = _next_wallet(found[1]) if found else DEMO_WALLET
        issuance_id = ids.new_issuance_id()
        async with engine.begin() as conn:
            now = clock.now()
            await repository.insert_issuance(
                conn,
                {
                    "id": issuance_id,
                    "campaign_id": campaign_id,
                    "kind": "targeted",
                    "status": "running",
                    "total": 1,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        await issuance.run(engine, campaign_id, issuance_id, kind="targeted", holders=[(wallet_id, None, DEMO_HOLDER)])
        async with engine.connect() as conn:
            found = await repository.latest_demo_voucher(conn, campaign_id)
    if found is None:
        raise RuntimeError(f"the demo voucher of {campaign_id} was issued but cannot be found")
    voucher_id, wallet_id, _ = found
    secret = load_server_secret(settings.resolved_server_secret_path)
    code = codes.make_code(secret, campaign_id, voucher_id, wallet_id)
    # New for every start: a voucher given back by a refund may be printed again, and must then redeem anew.
    pos_txn_id = "demo-" + secrets.token_hex(4)
    body = json.dumps(
        {"voucher_code": code, "wallet_id": wallet_id, "pos_txn_id": pos_txn_id, "order_amount_fen": 12000},
        separators=(",", ":"),
    )
    redeem = (
        'python -c "import os; from voucher_engine.merchants.client import send; '
        f"r = send(os.environ['VE'], os.environ['KEY_ID'], os.environ['SECRET'], 'POST', '/v1/redemptions', "
        f"b'{body}'); print(r.status_code, r.text)\""
    )
    quote = redeem.replace("'/v1/redemptions'", "'/v1/redemptions/quote'")
    return {
        "campaign_id": campaign_id,
        "voucher": {"id": voucher_id, "code": code, "campaign_id": campaign_id, "wallet_id": wallet_id},
        "pos_txn_id": pos_txn_id,
        "demo_commands": [
            f'curl -s -H "Authorization: Bearer $GOV" $VE/v1/campaigns/{campaign_id} | python -m json.tool',
            f'curl -s -H "Authorization: Bearer $GOV" $VE/v1/wallets/{wallet_id}/vouchers | python -m json.tool',
            "# quote, then redeem the demo voucher at demo-noodle-bar (a ¥120 dinner: ¥20 off):",
            quote,
            redeem,
        ],
    }


def _next_wallet(wallet_id: str) -> str:
    return f"{int(wallet_id) + 1:016d}"
