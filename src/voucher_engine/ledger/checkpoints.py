"""Signed checkpoints: the tree size and root, in the C2SP checkpoint text, signed with Ed25519.

    body       "<origin>\\n<tree_size>\\n<base64 root>\\n"
    signature  base64 Ed25519 over the bytes of body
    public_key base64 of the raw 32-byte key

The signing key is generated on first start (PKCS#8 PEM, owner-only, beside the other server secrets in the data
directory, or at VE_SIGNING_KEY_PATH), and its public half is written next to it as `<key>.pub` (PEM) so that it can
be handed to auditors; `GET /v1/ledger/public-key` serves it too. Because Ed25519 is deterministic, one tree size has
exactly one checkpoint: signing it again yields the same bytes.

`origin` names the log (VE_LEDGER_ORIGIN; one log per deployment today, one per issuer once the ledger splits).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from voucher_engine.secrets_store import load_or_create

DEFAULT_ORIGIN = "voucher-engine.local/ledger"


def origin() -> str:
    """The log's name, the first line of every checkpoint body (no spaces, no '+', per C2SP)."""
    value = os.environ.get("VE_LEDGER_ORIGIN", DEFAULT_ORIGIN).strip()
    if not value or any(ch.isspace() or ch == "+" for ch in value):
        raise ValueError(f"VE_LEDGER_ORIGIN {value!r} must be non-empty, without spaces or '+'")
    return value


def _new_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The checkpoint signing key at `path`, created atomically on first use (raw 32-byte seeds are read too)."""
    data = load_or_create(Path(path), _new_key_pem)
    if len(data) == 32:
        key = Ed25519PrivateKey.from_private_bytes(data)
    else:
        loaded = serialization.load_pem_private_key(data, password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        key = loaded
    pub_path = Path(str(path) + ".pub")
    if not pub_path.exists():
        pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        tmp = pub_path.with_name(f".{pub_path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pem)
        os.replace(tmp, pub_path)
    return key


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(raw: bytes) -> str:
    return (
        Ed25519PublicKey.from_public_bytes(raw)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def parse_public_key(text: str | bytes) -> bytes:
    """A pinned public key from base64 of the raw 32 bytes, a PEM, or a file holding either; answers the raw key."""
    if isinstance(text, str) and len(text) < 4096 and Path(text).is_file():
        text = Path(text).read_bytes()
    data = text.encode() if isinstance(text, str) else text
    if b"BEGIN PUBLIC KEY" in data:
        loaded = serialization.load_pem_public_key(data)
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("the PEM public key is not Ed25519")
        return raw_public_key(loaded)
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except binascii.Error:
        raise ValueError("a public key is base64 of 32 raw bytes, or a PEM") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return raw


def note_verifier_key(origin_name: str, raw_public: bytes) -> str:
    """The signed-note verifier key (`<name>+<hash>+<base64(0x01||key)>`) for Go's sumdb/note and C2SP tools."""
    key_hash = hashlib.sha256(origin_name.encode() + b"\n" + b"\x01" + raw_public).digest()[:4]
    encoded = base64.b64encode(b"\x01" + raw_public).decode()
    return f"{origin_name}+{key_hash.hex()}+{encoded}"


def body_text(origin_name: str, tree_size: int, root: bytes) -> str:
    return f"{origin_name}\n{tree_size}\n{base64.b64encode(root).decode()}\n"


def signed_note(origin_name: str, body: str, raw_public: bytes, signature: bytes) -> str:
    """The checkpoint as a C2SP signed note: body, a blank line, and the signature line."""
    key_hash = hashlib.sha256(origin_name.encode() + b"\n" + b"\x01" + raw_public).digest()[:4]
    return f"{body}\n\u2014 {origin_name} {base64.b64encode(key_hash + signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    signature: bytes
    public_key: bytes
    signed_at: datetime

    @property
    def body(self) -> str:
        return body_text(self.origin, self.tree_size, self.root_hash)

    def document(self) -> dict[str, Any]:
        """The checkpoint as API.md serves it (plus the signed-note form, an extension)."""
        from voucher_engine.ledger.canonical import format_at

        return {
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "body": self.body,
            "signature": base64.b64encode(self.signature).decode(),
            "public_key": base64.b64encode(self.public_key).decode(),
            "signed_at": format_at(self.signed_at),
            "note": signed_note(self.origin, self.body, self.public_key, self.signature),
        }


def sign(key: Ed25519PrivateKey, origin_name: str, tree_size: int, root: bytes, signed_at: datetime) -> Checkpoint:
    assert tree_size >= 1 and len(root) == 32, (tree_size, len(root))
    body = body_text(origin_name, tree_size, root)
    return Checkpoint(origin_name, tree_size, root, key.sign(body.encode()), raw_public_key(key), signed_at)


class CheckpointError(ValueError):
    """A checkpoint that is malformed, unsigned by the pinned key, or older than one already trusted."""


def verify_document(
    document: dict[str, Any], pinned_public_key: bytes, *, not_older_than: int | None = None
) -> tuple[int, bytes]:
    """Check a served checkpoint against a pinned key; answer (tree_size, root). Raises CheckpointError.

    Checks the body's three lines against the fields, the Ed25519 signature over the body, that the key in the
    document is the pinned one, and (with `not_older_than`, the size of the newest checkpoint already trusted) that
    this checkpoint does not roll the log back: an old checkpoint replayed is refused.
    """
    try:
        body = document["body"]
        tree_size = document["tree_size"]
        root = bytes.fromhex(document["root_hash"])
        signature = base64.b64decode(document["signature"], validate=True)
        public_key = base64.b64decode(document["public_key"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CheckpointError(f"malformed checkpoint: {exc}") from None
    if type(tree_size) is not int or tree_size < 1 or len(root) != 32:
        raise CheckpointError("malformed checkpoint: tree_size and root_hash")
    lines = body.split("\n") if isinstance(body, str) else []
    if len(lines) != 4 or lines[3] != "" or lines[1] != str(tree_size) or lines[2] != base64.b64encode(root).decode():
        raise CheckpointError("the checkpoint body does not say the tree size and root the fields say")
    if "origin" in document and lines[0] != document["origin"]:
        raise CheckpointError("the checkpoint body names another origin")
    pinned = base64.b64encode(pinned_public_key).decode()
    if public_key != pinned_public_key:
        raise CheckpointError(
            f"the checkpoint's signature does not verify under the pinned key ({pinned}): it names another key "
            f"({base64.b64encode(public_key).decode()}). Check that --public-key is the key you pinned from "
            "GET /v1/ledger/public-key; if it is, this checkpoint was not signed by that ledger"
        )
    try:
        Ed25519PublicKey.from_public_bytes(pinned_public_key).verify(signature, body.encode())
    except (InvalidSignature, ValueError):
        raise CheckpointError(
            f"the checkpoint's signature does not verify under the pinned key ({pinned}): "
            "the checkpoint was altered or not signed by that ledger"
        ) from None
    if not_older_than is not None and tree_size < not_older_than:
        raise CheckpointError(
            f"the checkpoint's signature verifies, but it is for {tree_size} transactions, fewer than the "
            f"{not_older_than} already trusted: an old checkpoint replayed"
        )
    return tree_size, root
