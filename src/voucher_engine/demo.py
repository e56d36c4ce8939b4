"""The demo: a Shanghai issuer, two merchants with POS keys, tokens, and (where the domains exist) a funded,
active campaign with vouchers — then a printed list of commands a newcomer can paste.

Seeding is idempotent: a second `voucher-engine demo` on the same data directory reuses what is there and prints
fresh credentials.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from typing import Any

from voucher_engine.config import Settings
from voucher_engine.db.engine import create_engine
from voucher_engine.secrets_store import load_server_secret

DEMO_ISSUER = {"name": "Shanghai Municipal Commission of Commerce (demo)", "region_code": "310000"}
DEMO_MERCHANTS: dict[str, dict[str, Any]] = {
    "demo-noodle-bar": {
        "name": "Xuhui Noodle Bar",
        "mcc": "5812",
        "region_code": "310104",
        "settlement_wallet": "0012345678901234",
        "tags": ["ecny-signed"],
    },
    "demo-grocer": {
        "name": "Jing'an Grocer",
        "mcc": "5411",
        "region_code": "310106",
        "settlement_wallet": "0012345678905678",
        "tags": ["farm-produce"],
    },
}


async def _seed(settings: Settings) -> dict:
    from voucher_engine.auth import service as auth_service
    from voucher_engine.campaigns import demo as campaign_demo
    from voucher_engine.issuers import repository as issuer_repository
    from voucher_engine.issuers import service as issuer_service
    from voucher_engine.issuers.schemas import IssuerCreate
    from voucher_engine.merchants import service as merchant_service
    from voucher_engine.merchants.schemas import MerchantPut

    server_secret = load_server_secret(settings.resolved_server_secret_path)
    if settings.database_url is None:
        raise RuntimeError("the demo seeds the database prepare_database started: DATABASE_URL must be set")
    engine = create_engine(settings.database_url, pool_size=2)
    seeded: dict = {"merchants": {}}
    try:
        async with engine.begin() as conn:
            row = await issuer_repository.get_by_region(conn, DEMO_ISSUER["region_code"])
            issuer_id = row.id if row else (await issuer_service.create(conn, IssuerCreate(**DEMO_ISSUER))).id
            seeded["issuer_id"] = issuer_id
            for merchant_id, fields in DEMO_MERCHANTS.items():
                await merchant_service.put(conn, merchant_id, MerchantPut(**fields))
                key = await merchant_service.create_key(conn, server_secret, merchant_id)
                seeded["merchants"][merchant_id] = {"key_id": key.key_id, "secret": key.secret}
            seeded["admin_token"], _ = await auth_service.create_token(conn, "admin")
            seeded["gov_token"], _ = await auth_service.create_token(conn, "gov", issuer_id)
            seeded["auditor_token"], _ = await auth_service.create_token(conn, "auditor")
        seeded.update(await campaign_demo.seed(engine, issuer_id, settings))
    finally:
        await engine.dispose()
    return seeded


def seed_and_print(settings: Settings) -> dict:
    seeded = asyncio.run(_seed(settings))
    base = f"http://{settings.host}:{settings.port}"
    noodle = seeded["merchants"]["demo-noodle-bar"]
    env_path = settings.data_dir / "demo.env"
    env_path.write_text(
        "".join(
            f"export {name}={shlex.quote(value)}\n"
            for name, value in {
                "VE": base,
                # Every later command in this shell then reads the demo's data, not an empty ./ve-data.
                "VE_DATA_DIR": str(settings.data_dir.resolve()),
                "ADMIN": seeded["admin_token"],
                "GOV": seeded["gov_token"],
                "AUDITOR": seeded["auditor_token"],
                "KEY_ID": noodle["key_id"],
                "SECRET": noodle["secret"],
            }.items()
        )
    )
    env_path.chmod(0o600)
    lines = [
        "",
        "Voucher engine demo is starting at " + base,
        f"Credentials are in {env_path} (shown once; keep them private):",
        f"  source {env_path}",
        "",
        "Try:",
        "  curl -s $VE/readyz",
        '  curl -s -H "Authorization: Bearer $ADMIN" $VE/v1/merchants | python -m json.tool',
        '  curl -s -H "Authorization: Bearer $GOV" $VE/v1/campaigns | python -m json.tool',
    ]
    for line in seeded.get("demo_commands", []):
        if not line.startswith("python -c"):  # the signed till requests are given below, through `pos`
            lines.append("  " + line)
    voucher = seeded.get("voucher")
    if voucher:
        till = f"--code {voucher['code']} --wallet {voucher['wallet_id']}"
        txn = seeded["pos_txn_id"]
        lines += [
            "",
            "At the till (signed with demo-noodle-bar's POS key from demo.env; in another terminal, first",
            f"  . .venv/bin/activate   and   source {env_path}   ):",
            "  voucher-engine pos ping",
            f"  voucher-engine pos quote {till} --amount-fen 12000",
            f"  voucher-engine pos redeem {till} --amount-fen 12000 --pos-txn-id {txn}",
            f"  voucher-engine pos refund --pos-txn-id {txn} --refund-id {txn}-r1 --amount-fen 12000",
            "  (each is safe to repeat: the same ids answer the same redemption or refund)",
            "  voucher-engine ledger verify",
            "",
            "A demo voucher: " + json.dumps(voucher),
        ]
    lines.append("")
    print("\n".join(lines), flush=True)
    return seeded
