"""The service, in process: the real app, lifespan and all, over a given database, with client helpers.

A module of its own (not conftest) so that test files can import it by a name no other conftest shadows.
"""

from __future__ import annotations

import contextlib

import asyncpg
import httpx

from voucher_engine.api.app import create_app
from voucher_engine.config import Settings
from voucher_engine.db.engine import plain_url


class Service:
    """A running app with an admin token, and helpers that speak its API the way clients do."""

    def __init__(self, app, client: httpx.AsyncClient, settings: Settings, admin_token: str):
        self.app = app
        self.client = client
        self.settings = settings
        self.admin_token = admin_token

    @property
    def state(self):
        return self.app.state.ve

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth(self.admin_token)

    async def token(self, role: str, issuer_id: str | None = None) -> str:
        body = {"role": role} if issuer_id is None else {"role": role, "issuer_id": issuer_id}
        response = await self.client.post("/v1/tokens", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    async def issuer(self, region_code: str, name: str | None = None) -> str:
        response = await self.client.post(
            "/v1/issuers",
            json={"name": name or f"Issuer {region_code}", "region_code": region_code},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def merchant(
        self, merchant_id: str, *, mcc: str = "5812", region_code: str = "310104", tags: list[str] | None = None
    ) -> dict:
        body = {
            "name": merchant_id,
            "mcc": mcc,
            "region_code": region_code,
            "settlement_wallet": "0000000000000001",
            "tags": tags or [],
        }
        response = await self.client.put(f"/v1/merchants/{merchant_id}", json=body, headers=self.admin)
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def approve_cofunders(self, campaign_id: str) -> None:
        """Each co-funder's government approves its pending share, as they would before the issuer funds."""
        detail = await self.client.get(f"/v1/campaigns/{campaign_id}", headers=self.admin)
        assert detail.status_code == 200, detail.text
        for funder in detail.json()["funders"]:
            if funder["approval"] != "pending":
                continue
            token = await self.token("gov", funder["issuer_id"])
            response = await self.client.post(
                f"/v1/campaigns/{campaign_id}/funders/{funder['issuer_id']}/approve", headers=self.auth(token)
            )
            assert response.status_code == 200, response.text

    async def pos_key(self, merchant_id: str) -> dict:
        response = await self.client.post(f"/v1/merchants/{merchant_id}/keys", headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()


async def start_service(database_url: str, data_dir, **settings_overrides):
    """Build the app over `database_url`, run its lifespan, and make an admin token; answer (Service, closer)."""
    from voucher_engine.auth import service as auth_service

    settings = Settings(database_url=database_url, data_dir=data_dir, **settings_overrides)
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with app.state.ve.engine.begin() as conn:
        admin_token, _ = await auth_service.create_token(conn, "admin")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    async def close() -> None:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)

    return Service(app, client, settings, admin_token), close


@contextlib.asynccontextmanager
async def outbox_kept(database_url: str):
    """While held, the webhook dispatcher's fan-out (which takes events off the outbox) waits: it runs only under
    the lock of its cursor's row, which this holds. The events written meanwhile can then be counted."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM webhook_cursor WHERE id = 1 FOR UPDATE")
            yield conn
    finally:
        await conn.close()
