"""A minimal signing POS client: what a till vendor's integration does, for the demo, tests and load tests."""

from __future__ import annotations

import secrets
import time

import httpx

from voucher_engine.merchants.signing import sign


def signed_headers(
    key_id: str,
    secret_hex: str,
    method: str,
    path_with_query: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(18)
    return {
        "X-VE-Key-Id": key_id,
        "X-VE-Timestamp": timestamp_text,
        "X-VE-Nonce": nonce,
        "X-VE-Signature": sign(secret_hex, method, path_with_query, timestamp_text, nonce, body),
        "Content-Type": "application/json",
    }


def send(
    base_url: str,
    key_id: str,
    secret_hex: str,
    method: str,
    path_with_query: str,
    body: bytes = b"",
    timeout_s: float = 10.0,
) -> httpx.Response:
    headers = signed_headers(key_id, secret_hex, method, path_with_query, body)
    return httpx.request(
        method, base_url.rstrip("/") + path_with_query, content=body, headers=headers, timeout=timeout_s
    )
