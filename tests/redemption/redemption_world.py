"""The redemption tests' world: a world of issuers and merchants, campaigns launched from the reference
contracts, and a till that signs its requests like a real POS."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

from voucher_engine.merchants.client import signed_headers

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ISSUER_REGIONS = ("000000", "310000", "310104", "320500", "320505", "330000")
MERCHANTS = {
    # id: (mcc, region, tags)
    "xuhui-noodles": ("5812", "310104", ["ecny-signed"]),
    "xuhui-grocer": ("5411", "310104", []),
    "suzhou-noodles": ("5812", "320505", ["ecny-signed"]),
    "gusu-shop": ("5411", "320508", ["ecny-signed"]),
    "xuhui-electric": ("5722", "310104", []),
    "fuyang-farm": ("5411", "330122", ["farm-produce"]),
    "xuhui-cinema": ("7832", "310104", []),
    "xuhui-builder": ("1520", "310104", []),
}
WALLET = "6200000000000001"
OTHER_WALLET = "6200000000000002"


@dataclass
class Till:
    """A merchant's POS terminal: signs every request with its key."""

    service: object
    merchant_id: str
    key_id: str
    secret: str

    async def send(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        nonce: str | None = None,
        timestamp: int | None = None,
    ):
        raw = orjson.dumps(body) if body is not None else b""
        headers = signed_headers(self.key_id, self.secret, method, path, raw, nonce=nonce, timestamp=timestamp)
        return await self.service.client.request(method, path, content=raw, headers=headers)

    async def redeem(
        self,
        code: str,
        amount_fen: int,
        *,
        wallet: str = WALLET,
        pos_txn_id: str | None = None,
        items: list | None = None,
        **kwargs,
    ):
        body = {
            "voucher_code": code,
            "wallet_id": wallet,
            "pos_txn_id": pos_txn_id or secrets.token_hex(8),
            "order_amount_fen": amount_fen,
        }
        if items is not None:
            body["items"] = items
        return await self.send("POST", "/v1/redemptions", body, **kwargs)

    async def quote(self, code: str, amount_fen: int, *, wallet: str = WALLET, items: list | None = None):
        body = {"voucher_code": code, "wallet_id": wallet, "order_amount_fen": amount_fen}
        if items is not None:
            body["items"] = items
        return await self.send("POST", "/v1/redemptions/quote", body)

    async def refund(self, redemption_id: str, amount_fen: int, refund_id: str | None = None, reason: str = "return"):
        body = {"refund_id": refund_id or secrets.token_hex(8), "amount_fen": amount_fen, "reason": reason}
        return await self.send("POST", f"/v1/redemptions/{redemption_id}/refunds", body)


class World:
    def __init__(self, service):
        self.service = service
        self.tills: dict[str, Till] = {}
        self.gov: dict[str, str] = {}

    async def set_clock(self, when: str) -> None:
        response = await self.service.client.put("/v1/test/clock", json={"now": when}, headers=self.service.admin)
        assert response.status_code == 200, response.text

    async def launch(self, contract: str, holders: list[dict], *, source: str | None = None) -> str:
        """Create, fund, activate and issue: answer the campaign id."""
        source = source or (CONTRACTS / contract).read_text()
        gov = self.gov[_issuer_region(source)]
        client, headers = self.service.client, self.service.auth(gov)
        created = await client.post("/v1/campaigns", json={"source": source}, headers=headers)
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        await self.service.approve_cofunders(campaign_id)
        for action in ("fund", "activate"):
            moved = await client.post(f"/v1/campaigns/{campaign_id}/{action}", headers=headers)
            assert moved.status_code == 200, moved.text
        if holders:
            issued = await client.post(
                f"/v1/campaigns/{campaign_id}/issuances", json={"holders": holders}, headers=headers
            )
            assert issued.status_code == 201, issued.text
            assert issued.json()["issued"] == len(holders), issued.text
        return campaign_id

    async def vouchers(self, wallet: str = WALLET, campaign_id: str | None = None) -> list[dict]:
        response = await self.service.client.get(f"/v1/wallets/{wallet}/vouchers", headers=self.service.admin)
        if response.status_code == 403:  # wallet listings are for gov and auditors
            auditor = await self.service.token("auditor")
            response = await self.service.client.get(
                f"/v1/wallets/{wallet}/vouchers", headers=self.service.auth(auditor)
            )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        return [v for v in items if campaign_id is None or v["campaign_id"] == campaign_id]

    async def code(self, campaign_id: str, wallet: str = WALLET) -> str:
        found = await self.vouchers(wallet, campaign_id)
        assert found, f"no voucher for {wallet} in {campaign_id}"
        return found[0]["code"]


def _issuer_region(source: str) -> str:
    for line in source.splitlines():
        line = line.strip()
        if line.startswith("campaign "):
            return line.rsplit("issuer", 1)[1].split()[0]
    raise AssertionError("no issuer line in the contract")


def holder(wallet: str = WALLET, **attributes) -> dict:
    defaults = {"age": 30, "residence_region": "310104", "graduate_year": 2025}
    return {"wallet_id": wallet, "id_hash": "h-" + wallet, "attributes": {**defaults, **attributes}}
