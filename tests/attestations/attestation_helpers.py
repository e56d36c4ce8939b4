"""Helpers of the attestation tests: an attester's key registered with the service, and tokens made by it."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from voucher_engine.attestations import jws


@dataclass
class Operator:
    service: Any
    name: str
    attester_id: str
    key: Ed25519PrivateKey

    def token(self, campaign_id: str, wallet_id: str, *, key: Ed25519PrivateKey | None = None, **claims: Any) -> str:
        """A signed attestation: eligible by default, fresh, for this campaign and wallet; `claims` override."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.attester_id,
            "sub": wallet_id,
            "aud": campaign_id,
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(12),
            "eligible": True,
        }
        body.update(claims)
        return jws.sign({k: v for k, v in body.items() if v is not None}, key or self.key)


async def register(service, name: str) -> Operator:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes_raw()).decode()
    response = await service.client.post(
        "/v1/attesters", json={"name": name, "public_key": public}, headers=service.admin
    )
    assert response.status_code == 201, response.text
    return Operator(service, name, response.json()["id"], key)
