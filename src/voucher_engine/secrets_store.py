"""The server's own secrets, kept in files: created on first start, read on every later one.

- the server secret (32 random bytes) from which each POS key's HMAC secret and every voucher code's MAC are
  derived, so the database never holds a usable signing secret;
- the Ed25519 key that signs ledger checkpoints.
Several replicas behind a load balancer must be given the same files (by path).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

SERVER_SECRET_BYTES = 32


def load_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """Read the file, or create it atomically with owner-only permissions (two starters agree on one winner)."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        os.link(tmp, path)  # fails if another process won the race; then theirs is the one
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def load_server_secret(path: Path) -> bytes:
    secret = load_or_create(path, lambda: secrets.token_bytes(SERVER_SECRET_BYTES))
    if len(secret) != SERVER_SECRET_BYTES:
        raise ValueError(f"{path} must hold exactly {SERVER_SECRET_BYTES} bytes")
    return secret


def derive(server_secret: bytes, purpose: str, subject: str) -> bytes:
    """A per-purpose, per-subject key: HMAC-SHA256(server secret, purpose NUL subject)."""
    return hmac.new(server_secret, purpose.encode() + b"\x00" + subject.encode(), hashlib.sha256).digest()
