"""The reference attester: what a public-data operator runs to attest holders without handing their data over.

It reads a campaign's published contract, evaluates the holder conditions on the data it holds with the same
contract library the engine uses (`compile_contract(...).check_holder`), and signs a compact JWS: `"eligible":
true` by default (the engine then sees no attribute at all), or, with `carry_attributes`, the attributes for the
engine to evaluate and drop. A holder who fails the conditions gets no attestation (`NotEligible`, naming the
conditions that failed).
"""

from __future__ import annotations

import base64
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from voucher_engine.attestations import jws
from voucher_engine.contracts import CompiledContract, compile_contract

DEFAULT_TTL_S = 600


class NotEligible(Exception):
    """The holder fails the campaign's holder conditions; `rules` are their texts (no values)."""

    def __init__(self, rules: list[str]) -> None:
        super().__init__("; ".join(rules))
        self.rules = rules


def integer_attributes(contract: CompiledContract) -> set[str]:
    """Holder attributes the contract compares as integers or money (a CSV's cells are text)."""
    found: set[str] = set()
    stack = [rule.condition for rule in contract.model.holder_rules]
    while stack:
        node = stack.pop()
        if hasattr(node, "parts"):
            stack.extend(node.parts)
        elif hasattr(node, "part"):
            stack.append(node.part)
        elif node.ftype in ("int", "integer", "money"):
            found.add(node.path.removeprefix("holder."))
    return found


def keygen() -> tuple[bytes, str]:
    """A new Ed25519 key: (the private key as PKCS#8 PEM, the public key as base64 of its raw 32 bytes)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem, public_key_base64(key)


def public_key_base64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes_raw()).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


class Attester:
    """Signs attestations for one campaign: its contract compiled once, then one evaluation and one signature
    per holder (about 25 us)."""

    def __init__(
        self,
        contract: str | CompiledContract,
        *,
        campaign_id: str,
        attester_id: str,
        key: Ed25519PrivateKey,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> None:
        self.contract = compile_contract(contract) if isinstance(contract, str) else contract
        self.campaign_id = campaign_id
        self.attester_id = attester_id
        self.key = key
        self.ttl_s = ttl_s

    def attest(
        self,
        wallet_id: str,
        attributes: dict[str, Any],
        *,
        id_hash: str | None = None,
        carry_attributes: bool = False,
        now_s: int | None = None,
        jti: str | None = None,
    ) -> str:
        failures = self.contract.check_holder(attributes)
        if failures:
            raise NotEligible([failure.rule for failure in failures])
        now_s = int(time.time()) if now_s is None else now_s
        claims: dict[str, Any] = {
            "iss": self.attester_id,
            "sub": wallet_id,
            "aud": self.campaign_id,
            "iat": now_s,
            "exp": now_s + self.ttl_s,
            "jti": jti or secrets.token_urlsafe(16),
        }
        if id_hash is not None:
            claims["id_hash"] = id_hash
        if carry_attributes:
            claims["attributes"] = attributes
        else:
            claims["eligible"] = True
        return jws.sign(claims, self.key)
