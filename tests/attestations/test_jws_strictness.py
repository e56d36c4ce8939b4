"""What the Ed25519 verification refuses, by ed25519-zebra (the default) and by libsodium (the fallback).

ed25519-zebra follows ZIP-215, more permissive than libsodium about a signature's R; jws.py refuses by its bytes the
R encodings libsodium refuses (non-canonical, small order), so that both refuse the same signatures but one kind
that only the key's holder can make (an R with a small-order component added). Each case is pinned here for both
libraries. The odd signatures are made with the private scalar (as only the key's holder could) and libsodium's
own point operations; nothing here does curve arithmetic by hand.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_core_ed25519_add, crypto_scalarmult_ed25519_base_noclamp

from voucher_engine.attestations import jws

L = 2**252 + 27742317777372353535851937790883648493  # the order of the main subgroup
P = 2**255 - 19
Y_ORDER_8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
MESSAGE = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIwMDAwMDAwMDAwMDAwMDAxIn0"


@pytest.fixture(params=["zebra", "libsodium"])
def backend(request, monkeypatch) -> str:
    if request.param == "zebra":
        if jws.zebra_verify is None:
            pytest.skip("py-ed25519-zebra-bindings is not installed")
    else:
        monkeypatch.setattr(jws, "zebra_verify", None)
    return request.param


class Signer:
    """A key, with its private scalar, to make signatures that a normal signer never makes."""

    def __init__(self) -> None:
        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        clamped = bytearray(hashlib.sha512(seed).digest()[:32])
        clamped[0] &= 248
        clamped[31] = (clamped[31] & 127) | 64
        self.key = key
        self.scalar = int.from_bytes(clamped, "little")
        self.public = key.public_key().public_bytes_raw()

    def challenge(self, r_bytes: bytes) -> int:
        return int.from_bytes(hashlib.sha512(r_bytes + self.public + MESSAGE).digest(), "little") % L

    def with_r(self, r_bytes: bytes, nonce: int = 0) -> bytes:
        """A signature whose R is `r_bytes` (nonce: R's discrete log in its main-subgroup part)."""
        s = (nonce + self.challenge(r_bytes) * self.scalar) % L
        return r_bytes + s.to_bytes(32, "little")


def ok(signature: bytes, public: bytes) -> bool:
    return jws.signature_ok(jws.Compact(MESSAGE, {}, signature), public)


def test_a_good_signature_verifies_and_a_non_canonical_s_does_not(backend):
    signer = Signer()
    good = signer.key.sign(MESSAGE)
    assert ok(good, signer.public)
    s = int.from_bytes(good[32:], "little")
    assert not ok(good[:32] + (s + L).to_bytes(32, "little"), signer.public)  # the same S, plus the group order
    assert not ok(good[:-1] + bytes([good[-1] ^ 1]), signer.public)


@pytest.mark.parametrize(
    "y",
    [1, P - 1, 0, Y_ORDER_8, P - Y_ORDER_8, P, P + 1],
    ids=["neutral", "order-2", "order-4", "order-8", "order-8-other", "p (non-canonical 0)", "p+1 (non-canonical 1)"],
)
@pytest.mark.parametrize("sign_bit", [0, 1])
def test_an_r_of_small_order_or_not_canonical_is_refused(backend, y, sign_bit):
    signer = Signer()
    r_bytes = (y | sign_bit << 255).to_bytes(32, "little")
    assert not ok(signer.with_r(r_bytes), signer.public)


def test_an_r_with_a_small_order_component_verifies_only_in_zebra(backend):
    """The one difference left (ZIP-215's cofactored equation): made only with the private key, so it grants the
    key's holder nothing it could not sign plainly (jws.py's docstring)."""
    signer = Signer()
    nonce = int.from_bytes(os.urandom(32), "little") % L
    mixed = crypto_core_ed25519_add(
        crypto_scalarmult_ed25519_base_noclamp(nonce.to_bytes(32, "little")), Y_ORDER_8.to_bytes(32, "little")
    )
    assert ok(signer.with_r(mixed, nonce), signer.public) == (backend == "zebra")
    # Without the private key, nobody can move a good signature's R: the challenge hashes R's bytes.
    good = signer.key.sign(MESSAGE)
    moved = crypto_core_ed25519_add(good[:32], Y_ORDER_8.to_bytes(32, "little"))
    assert not ok(moved + good[32:], signer.public)


def test_a_key_of_small_order_is_refused_at_registration_and_verifies_nothing(backend):
    """Such a key is no key: under ZIP-215 anyone could sign for it (R = sB for any s). The registry refuses it; the
    verification refuses it too, should one ever be in the registry (a row written by hand)."""
    for y in (1, 0, P - 1, Y_ORDER_8):
        public = y.to_bytes(32, "little")
        with pytest.raises(ValueError):
            jws.public_key_from_base64(base64.b64encode(public).decode())
        s = int.from_bytes(os.urandom(32), "little") % L
        forged = crypto_scalarmult_ed25519_base_noclamp(s.to_bytes(32, "little")) + s.to_bytes(32, "little")
        assert not ok(forged, public)
