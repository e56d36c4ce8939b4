"""Voucher codes (券码): the text of the QR code a holder shows at the till.

Format (version 1), 56 characters of URL-safe text:

    "V1" + base64url_nopad( campaign_id raw (8 bytes) || voucher_id raw (16 bytes) || MAC (16 bytes) )

where `campaign_id = "cmp_" + hex(8 bytes)`, `voucher_id = "vch_" + hex(16 bytes)` and
`MAC = HMAC-SHA256(K, "V1" || campaign raw || voucher raw)[:16]` with `K = derive(server_secret, "voucher-code", "v1")`.

- Unguessable: forging a code means forging a 128-bit MAC; voucher ids are not secret.
- Checkable before any database work: `parse_code` is a length check, a base64 decode and one HMAC (a few µs).
- Bound to the holder: the MAC proves the code genuine; the holder is checked against the voucher row's
  `wallet_id` by the caller (a genuine code shown from another wallet is `VOUCHER_NOT_HOLDER`, which API.md wants
  the till to be able to tell apart from a forgery, `VOUCHER_UNKNOWN`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from functools import lru_cache

from voucher_engine.errors import EngineError
from voucher_engine.secrets_store import derive

VERSION = b"V1"
CAMPAIGN_ID_BYTES = 8
VOUCHER_ID_BYTES = 16
MAC_BYTES = 16
_PAYLOAD_BYTES = CAMPAIGN_ID_BYTES + VOUCHER_ID_BYTES + MAC_BYTES
CODE_CHARS = len(VERSION) + (_PAYLOAD_BYTES * 4 + 2) // 3  # 2 + 54 (no padding)
_CODE_PATTERN = re.compile(r"^V1[A-Za-z0-9_-]{%d}$" % (CODE_CHARS - 2))
_CAMPAIGN_ID = re.compile(r"^cmp_[0-9a-f]{%d}$" % (2 * CAMPAIGN_ID_BYTES))
_VOUCHER_ID = re.compile(r"^vch_[0-9a-f]{%d}$" % (2 * VOUCHER_ID_BYTES))


@lru_cache(maxsize=8)
def _key(server_secret: bytes) -> bytes:
    return derive(server_secret, "voucher-code", "v1")


def _mac(key: bytes, campaign_raw: bytes, voucher_raw: bytes) -> bytes:
    return hmac.new(key, VERSION + campaign_raw + voucher_raw, hashlib.sha256).digest()[:MAC_BYTES]


def make_code(server_secret: bytes, campaign_id: str, voucher_id: str, wallet_id: str | None = None) -> str:
    """The code of a voucher. `wallet_id` is accepted for the interface's sake but not covered by the MAC: the
    holder is checked against the voucher row instead (see the module docstring)."""
    if not _CAMPAIGN_ID.match(campaign_id) or not _VOUCHER_ID.match(voucher_id):
        raise ValueError(f"not ids this engine makes: {campaign_id!r}, {voucher_id!r}")
    campaign_raw = bytes.fromhex(campaign_id[4:])
    voucher_raw = bytes.fromhex(voucher_id[4:])
    mac = _mac(_key(server_secret), campaign_raw, voucher_raw)
    return VERSION.decode() + base64.urlsafe_b64encode(campaign_raw + voucher_raw + mac).decode().rstrip("=")


def make_codes(server_secret: bytes, campaign_id: str, voucher_ids: list[str]) -> list[str]:
    """Many codes of one campaign at once (issuance answers, listings)."""
    key = _key(server_secret)
    campaign_raw = bytes.fromhex(campaign_id[4:])
    out = []
    for voucher_id in voucher_ids:
        voucher_raw = bytes.fromhex(voucher_id[4:])
        mac = _mac(key, campaign_raw, voucher_raw)
        out.append("V1" + base64.urlsafe_b64encode(campaign_raw + voucher_raw + mac).decode().rstrip("="))
    return out


_CANONICAL_LAST = frozenset("AQgw")
_UNKNOWN = "The voucher code is not one this engine issued."


def parse_code(server_secret: bytes, code: object) -> tuple[str, str]:
    """`(campaign_id, voucher_id)` of a genuine code; `VOUCHER_UNKNOWN` for anything malformed or forged."""
    # The last character carries 2 bits of payload and 4 padding bits, which must be zero: one voucher, one code.
    if (
        not isinstance(code, str)
        or len(code) != CODE_CHARS
        or not _CODE_PATTERN.match(code)
        or code[-1] not in _CANONICAL_LAST
    ):
        raise EngineError("VOUCHER_UNKNOWN", _UNKNOWN)
    try:
        payload = base64.urlsafe_b64decode(code[2:] + "==")
    except (binascii.Error, ValueError):
        raise EngineError("VOUCHER_UNKNOWN", _UNKNOWN) from None
    if len(payload) != _PAYLOAD_BYTES:
        raise EngineError("VOUCHER_UNKNOWN", _UNKNOWN)
    campaign_raw = payload[:CAMPAIGN_ID_BYTES]
    voucher_raw = payload[CAMPAIGN_ID_BYTES : CAMPAIGN_ID_BYTES + VOUCHER_ID_BYTES]
    if not hmac.compare_digest(payload[-MAC_BYTES:], _mac(_key(server_secret), campaign_raw, voucher_raw)):
        raise EngineError("VOUCHER_UNKNOWN", _UNKNOWN)
    return "cmp_" + campaign_raw.hex(), "vch_" + voucher_raw.hex()
