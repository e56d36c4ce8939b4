"""Helpers of the campaign tests: registered issuers, gov tokens, contracts, and campaigns moved along their
lifecycle through the API the way a government's system would. (A module of its own: test modules cannot import
from a conftest, whose module name every test folder shares.)"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def policy(name: str) -> str:
    return (CONTRACTS / f"{name}.contract").read_text()


def contract(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


def dining(
    *,
    quantity: str = "500,000",
    limit: int = 1,
    distribution: str = "targeted",
    budget: str = "¥10,000,000",
    funders: str = "310000: 100%",
    issuer: str = "310000",
    validity: str | None = None,
) -> str:
    """Shanghai dining 满减 vouchers with the knobs the tests turn."""
    validity = validity or "valid from 2025-01-01 00:00 to 2025-01-31 23:59 China time"
    return contract(f"""
        campaign "Dining test" issuer {issuer}
        budget {budget}
        funders {{ {funders} }}
        voucher threshold: spend ¥100, get ¥20 off
        quantity {quantity}
        limit {limit} per holder
        distribution {distribution}
        {validity}
        holder {{
            age >= 18
            residence_region within 310000
        }}
        payment {{
            merchant.mcc in {{"5812", "5813", "5814"}}
        }}
    """)


ADULT = {"age": 30, "residence_region": "310104"}


def wallet(n: int) -> str:
    return f"{n:016d}"


@dataclass
class Gov:
    """A government's view of the service: its issuer, its token, helpers for its campaigns."""

    service: object
    issuer_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, json: object = None):
        return await self.service.client.post(path, json=json, headers=self.headers)

    async def get(self, path: str, **params):
        return await self.service.client.get(path, params=params or None, headers=self.headers)

    async def create(self, source: str) -> dict:
        response = await self.post("/v1/campaigns", {"source": source})
        assert response.status_code == 201, response.text
        return response.json()

    async def move(self, campaign_id: str, action: str) -> dict:
        if action == "fund":
            # Co-funders consent first (campaigns/consent.py); tests of consent itself post `fund` directly.
            await self.service.approve_cofunders(campaign_id)
        response = await self.post(f"/v1/campaigns/{campaign_id}/{action}")
        assert response.status_code == 200, response.text
        return response.json()

    async def active(self, source: str) -> dict:
        campaign = await self.create(source)
        await self.move(campaign["id"], "fund")
        return await self.move(campaign["id"], "activate")

    async def campaign(self, campaign_id: str) -> dict:
        response = await self.get(f"/v1/campaigns/{campaign_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def issue(self, campaign_id: str, holders: list[dict]) -> dict:
        response = await self.post(f"/v1/campaigns/{campaign_id}/issuances", {"holders": holders})
        assert response.status_code == 201, response.text
        return response.json()


async def set_clock(service, now: str) -> None:
    response = await service.client.put("/v1/test/clock", json={"now": now}, headers=service.admin)
    assert response.status_code == 200, response.text


async def make_gov(service, region: str, *, register: tuple[str, ...] = ()) -> Gov:
    """A gov for `region` (registering it and any other issuers named, unless already there)."""
    for code in (region, *register):
        response = await service.client.post(
            "/v1/issuers", json={"name": f"Issuer {code}", "region_code": code}, headers=service.admin
        )
        assert response.status_code in (201, 409), response.text
    issuer_id = f"iss_{region}"
    return Gov(service, issuer_id, await service.token("gov", issuer_id))


async def start_service(database_url: str, data_dir, **overrides):
    """The shared service builder (tests/service_support.py), for services with other settings."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from service_support import start_service as start

    return await start(database_url, data_dir, **overrides)
