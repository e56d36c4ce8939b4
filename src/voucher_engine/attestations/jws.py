"""Compact JWS (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037), exactly as attestations use it.

Verification is written here rather than through PyJWT, because of a measured CPU budget: an attested issuance of
100,000 holders must stay within 2x the same issuance with raw attributes, and PyJWT's `PyJWS.decode_complete` cost
about 28 us per token above the Ed25519 verification itself (docs/attestations.md). The signature is verified by
libsodium (PyNaCl, `crypto_sign_open`), about 45 us a signature here against 70 us for OpenSSL's (through
`cryptography`); libsodium is also the stricter of the two (it refuses non-canonical encodings and small-order
keys), so nothing OpenSSL would refuse passes here. What is parsed here is deliberately narrow, which is where hand-written JWS code
usually goes wrong: only the compact form; only the header `{"alg": "EdDSA", "typ": "ve-attestation+jwt"}` (no
`alg` choice, no `jwk`/`jku`/`crit`, nothing else); base64url without padding, checked against its alphabet
before decoding; a 64-byte signature over the two first segments exactly as sent; and the key chosen by the
caller from its own registry, never from the token. Signing (the reference attester, tests) uses PyJWT, and the
tests check that tokens PyJWT makes verify here and that tampered ones fail both.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

try:
    from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
    from nacl.exceptions import BadSignatureError
except ImportError:  # an environment installed before PyNaCl was a dependency: OpenSSL's verification (slower)
    crypto_sign_open = None  # type: ignore[assignment]

if TYPE_CHECKING:  # `cryptography` is imported where keys are made or read, not by verifier workers
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER = {"alg": "EdDSA", "typ": "ve-attestation+jwt"}
MAX_TOKEN_CHARS = 8192
# header . payload . signature (64 bytes = 86 base64url characters without padding)
_COMPACT = re.compile(r"([A-Za-z0-9_-]{2,512})\.([A-Za-z0-9_-]{2,7600})\.([A-Za-z0-9_-]{86})")
# Signers write the same header text for every token: each distinct text is decided once (bounded).
_headers_seen: dict[str, bool] = {}
MAX_HEADERS_SEEN = 64


class Malformed(Exception):
    """Not a compact JWS of this form; `check` says which part ("malformed", "header" or "payload")."""

    def __init__(self, check: str) -> None:
        super().__init__(check)
        self.check = check


@dataclass(frozen=True, slots=True)
class Compact:
    """A parsed, not yet verified token: what was signed, the payload's claims and the signature."""

    signing_input: bytes
    claims: dict[str, Any]
    signature: bytes


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _header_ok(segment: str) -> bool:
    known = _headers_seen.get(segment)
    if known is None:
        try:
            known = orjson.loads(_b64decode(segment)) == HEADER
        except (ValueError, orjson.JSONDecodeError):
            known = False
        if len(_headers_seen) < MAX_HEADERS_SEEN:
            _headers_seen[segment] = known
    return known


def parse(token: object) -> Compact:
    """Split and decode a compact JWS; raises Malformed. Verifies nothing."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise Malformed("malformed")
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise Malformed("malformed")
    header, payload, signature = match.groups()
    if not _header_ok(header):
        raise Malformed("header")
    try:
        claims = orjson.loads(_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        raise Malformed("payload") from None
    if not isinstance(claims, dict):
        raise Malformed("payload")
    return Compact((header + "." + payload).encode("ascii"), claims, _b64decode(signature))


def signature_ok(compact: Compact, public_key: bytes) -> bool:
    """The signature over the signing input, with a raw 32-byte Ed25519 public key (the registry's bytes)."""
    if crypto_sign_open is None:
        return _openssl_signature_ok(compact, public_key)
    try:
        crypto_sign_open(compact.signature + compact.signing_input, public_key)
    except BadSignatureError:
        return False
    return True


def _openssl_signature_ok(compact: Compact, public_key: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(compact.signature, compact.signing_input)
    except InvalidSignature:
        return False
    return True


def sign(claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """A compact JWS of `claims` with the attestation header, made by PyJWT (a well-kept implementation)."""
    import jwt

    return jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": HEADER["typ"]})


def public_key_from_base64(text: str) -> Ed25519PublicKey:
    """A raw 32-byte Ed25519 public key given in base64 (standard or URL-safe, padding optional)."""
    data = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    if len(data) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    if crypto_sign_open is not None and not crypto_core_ed25519_is_valid_point(
        data
    ):  # small order or not on the curve: nothing would verify
        raise ValueError("not an Ed25519 public key of the main subgroup")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(data)
