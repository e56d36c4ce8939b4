"""Signing deliveries: X-VE-Signature = lowercase hex HMAC-SHA256(secret, TIMESTAMP + "\\n" + BODY).

A subscription's secret is derived from the server secret and the subscription id (like POS key secrets), so the
database never holds it: it is shown once when the subscription is made, and re-derived to sign each delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from voucher_engine.secrets_store import derive

PURPOSE = "webhook-secret"
PREFIX = "whsec_"


def subscription_secret(server_secret: bytes, subscription_id: str) -> str:
    raw = derive(server_secret, PURPOSE, subscription_id)
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What a receiver recomputes with its secret from the X-VE-Timestamp header and the raw body."""
    return hmac.new(secret.encode(), timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, received: str) -> bool:
    """A receiver's check (constant time); receivers should also refuse timestamps far from their clock."""
    return hmac.compare_digest(signature(secret, timestamp, body), received)
