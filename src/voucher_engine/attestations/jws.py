"""Compact JWS (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037), exactly as attestations use it.

Verification is written here rather than through PyJWT, because of a measured CPU budget: an attested issuance of
100,000 holders must stay within 2x the same issuance with raw attributes, and PyJWT's `PyJWS.decode_complete` cost
about 28 us per token above the Ed25519 verification itself (docs/attestations.md). What is parsed here is
deliberately narrow, which is where hand-written JWS code usually goes wrong: only the compact form; only the header
`{"alg": "EdDSA", "typ": "ve-attestation+jwt"}` (no `alg` choice, no `jwk`/`jku`/`crit`, nothing else); base64url
without padding, checked against its alphabet before decoding; a 64-byte signature over the two first segments
exactly as sent; and the key chosen by the caller from its own registry, never from the token. Signing (the
reference attester, tests) uses PyJWT, and the tests check that tokens PyJWT makes verify here and that tampered
ones fail both.

The signature is verified by ed25519-zebra (Rust, curve25519-dalek's AVX2 backend; `py-ed25519-zebra-bindings`),
~41 us a signature here, where libsodium (PyNaCl, the fallback when the bindings are missing) takes ~60 us and
OpenSSL (`cryptography`, the last resort) ~70 us. ed25519-zebra follows ZIP-215, which is more permissive than
libsodium about the point R of a signature (non-canonical encodings, points of small order, a small-order component;
the cofactored equation) and about the key A. What keeps it as strict as libsodium here: S must be canonical
(ZIP-215 requires it too; tested); A is never the token's but the registry's, refused at registration unless it is a
canonical point of the main subgroup (`public_key_from_base64`); and R is refused before the verification, by
comparing bytes, when its encoding is non-canonical or one of the small-order points libsodium refuses
(`_point_acceptable`, which also refuses such a key, should one be in the registry). What is left: an R with a small-order component added to a main-subgroup point verifies here and
not in libsodium. Only the holder of the private key can make such a signature (R's bytes are hashed into the
challenge, so nobody else can change R of a good signature, nor S, which must be canonical): it is the attester
signing what it could sign plainly, so it grants nothing; a stranger can neither forge nor re-shape a token.
tests/attestations/test_jws_strictness.py pins each of these cases for both libraries.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

try:
    from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
    from nacl.exceptions import BadSignatureError
except ImportError:  # an environment installed before PyNaCl was a dependency: OpenSSL's verification (slower)
    crypto_sign_open = None  # type: ignore[assignment]
try:
    from ed25519_zebra import ed_verify as zebra_verify
except ImportError:  # an environment installed before it was a dependency: libsodium's verification (slower)
    zebra_verify = None

if TYPE_CHECKING:  # `cryptography` is imported where keys are made or read, not by verifier workers
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER = {"alg": "EdDSA", "typ": "ve-attestation+jwt"}
MAX_TOKEN_CHARS = 8192
MAX_HEADER_CHARS = 512
SIGNATURE_CHARS = 86  # 64 bytes, base64url without padding
# What a compact JWS may contain: the base64url alphabet and the two dots. Deleting these from the token's bytes must
# leave nothing (one C pass, a third of a regular expression's cost on a 400-character token).
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
# base64url to standard base64, for binascii (which does not check the alphabet: the deletion above did).
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# Signers write the same header text for every token: each distinct text is decided once (bounded).
_headers_seen: dict[bytes, bool] = {}
MAX_HEADERS_SEEN = 64


class Malformed(Exception):
    """Not a compact JWS of this form; `check` says which part ("malformed", "header" or "payload")."""

    def __init__(self, check: str) -> None:
        super().__init__(check)
        self.check = check


class Compact(NamedTuple):
    """A parsed, not yet verified token: what was signed, the payload's claims and the signature. (A tuple: made
    100,000 times for a list of 100,000, where a frozen dataclass costs a microsecond each.)"""

    signing_input: bytes
    claims: dict[str, Any]
    signature: bytes


def _b64decode(segment: bytes) -> bytes:
    """A base64url segment whose alphabet is checked already; raises binascii.Error (a ValueError) on a length that
    is no base64 (1 more than a multiple of 4)."""
    return binascii.a2b_base64(segment.translate(_URL_TO_STANDARD) + b"=" * (-len(segment) % 4))


def _header_ok(segment: bytes) -> bool:
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
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise Malformed("malformed")
    data = token.encode("ascii")
    if data.translate(None, _ALPHABET):
        raise Malformed("malformed")
    parts = data.split(b".")
    if len(parts) != 3:
        raise Malformed("malformed")
    header, payload, signature = parts
    if not 2 <= len(header) <= MAX_HEADER_CHARS or len(payload) < 2 or len(signature) != SIGNATURE_CHARS:
        raise Malformed("malformed")
    if not _header_ok(header):
        raise Malformed("header")
    try:
        claims = orjson.loads(_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        raise Malformed("payload") from None
    if not isinstance(claims, dict):
        raise Malformed("payload")
    return Compact(data[: len(header) + 1 + len(payload)], claims, _b64decode(signature))


# R's y coordinate (its encoding without the sign bit) must be below p (canonical) and none of the small-order
# points' (1: the neutral element; p - 1: order 2; 0: order 4; the order-8 pair, whose y sum to p): the encodings
# libsodium's verification refuses (its ge25519_has_small_order and the byte comparison of R), compared as numbers.
_P = 2**255 - 19
_Y_MASK = (1 << 255) - 1
_Y_ORDER_8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y_ORDER_8, _P - _Y_ORDER_8})


def _point_acceptable(encoded: bytes) -> bool:
    y = int.from_bytes(encoded[:32], "little") & _Y_MASK
    return y < _P and y not in _SMALL_ORDER_Y


def signature_ok(compact: Compact, public_key: bytes) -> bool:
    """The signature over the signing input, with a raw 32-byte Ed25519 public key (the registry's bytes)."""
    if zebra_verify is not None:
        # A too, though the registry refuses such keys: for a key of small order, ZIP-215 lets anyone sign.
        return (
            _point_acceptable(compact.signature)
            and _point_acceptable(public_key)
            and zebra_verify(compact.signature, compact.signing_input, public_key)
        )
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
