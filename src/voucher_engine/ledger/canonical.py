"""The transaction object as served, its canonical bytes, and the two hashes that cover them.

    served    {"id", "seq", "kind", "at", "postings": [{"account", "debit_fen"|"credit_fen"}], "refs", "hash", "prev_hash"}
    canonical RFC 8785 (JCS) of the served object without "hash" and "prev_hash"
    chain     hash = SHA-256(raw 32 bytes of prev_hash || canonical); the first prev_hash is 32 zero bytes
    leaf      SHA-256(0x00 || canonical)       (RFC 6962 §2.1)

`at` is always written in UTC with exactly six fractional digits and an explicit offset
(`2025-03-01T02:00:00.000000+00:00`), so one instant has one spelling.

RFC 8785 is computed with orjson's sorted-keys output, which is byte-for-byte JCS for the values a transaction can
hold (model.py enforces it): object keys in ASCII (so code-point order is JCS's UTF-16 order), integers below 2^53 (so
they print as JCS prints them), no floats, and strings that are valid Unicode (orjson and JCS escape exactly the
same characters: `"`, `\\` and U+0000..U+001F, the latter as \\b \\t \\n \\f \\r or lowercase \\u00xx). The test
suite checks this equivalence against the `rfc8785` package on generated transactions; the pure `rfc8785` package is
some fifty times slower, which matters when `verify` hashes millions of rows.

The verifier builds the same bytes with less work per row (`postings_template` once per shape of postings, then
`canonical_parts`): the postings are formatted into a template made once per (accounts, sides) and spliced in as an
orjson Fragment, so a row costs one `orjson.dumps` call. The test suite checks it against `rfc8785` too.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import orjson

ZERO_HASH = bytes(32)
_SORT = orjson.OPT_SORT_KEYS
_sha256 = hashlib.sha256


def format_at(at: datetime) -> str:
    """RFC 3339 in UTC, microseconds, `+00:00`: the one spelling of an instant that the hashes cover."""
    if at.tzinfo is not timezone.utc:
        if at.tzinfo is None:
            raise ValueError("a ledger time must be timezone-aware")
        at = at.astimezone(timezone.utc)
    return at.isoformat(timespec="microseconds")


def postings_object(accounts: list[str], amounts_fen: list[int]) -> list[dict[str, Any]]:
    return [
        {"account": account, "debit_fen": amount} if amount > 0 else {"account": account, "credit_fen": -amount}
        for account, amount in zip(accounts, amounts_fen)
    ]


def tx_object(
    *, id: str, seq: int | None, kind: str, at: str, accounts: list[str], amounts_fen: list[int], refs: dict[str, Any]
) -> dict[str, Any]:
    """The served object without its hashes (what `canonical` covers)."""
    return {
        "id": id,
        "seq": seq,
        "kind": kind,
        "at": at,
        "postings": postings_object(accounts, amounts_fen),
        "refs": refs,
    }


def canonical(obj: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of a transaction object (hash and prev_hash must already be left out)."""
    return orjson.dumps(obj, option=_SORT)


def postings_template(accounts: list[Any], debits: list[bool]) -> bytes:
    """The canonical postings array with `%d` where each amount goes (its absolute value), for `bytes % amounts`.

    Keys within a posting are already in JCS order ("account" < "credit_fen" < "debit_fen"); account names are
    JSON-escaped by orjson and any '%' in them doubled, so the template formats back to exactly what
    `canonical(tx_object(...))` writes for the same accounts and sides.
    """
    parts = [
        b'{"account":'
        + orjson.dumps(account).replace(b"%", b"%%")
        + (b',"debit_fen":%d}' if debit else b',"credit_fen":%d}')
        for account, debit in zip(accounts, debits)
    ]
    return b"[" + b",".join(parts) + b"]"


def canonical_parts(*, id: Any, seq: Any, kind: Any, at: Any, postings: bytes, refs: Any) -> bytes:
    """`canonical(tx_object(...))` with the postings already canonical (from `postings_template`)."""
    return orjson.dumps(
        {"at": at, "id": id, "kind": kind, "postings": orjson.Fragment(postings), "refs": refs, "seq": seq},
        option=_SORT,
    )


def chain_hash(prev_hash: bytes, canonical_bytes: bytes) -> bytes:
    return _sha256(prev_hash + canonical_bytes).digest()


def leaf_hash(canonical_bytes: bytes) -> bytes:
    return _sha256(b"\x00" + canonical_bytes).digest()


def served(obj: dict[str, Any], hash_: bytes | None, prev_hash: bytes | None) -> dict[str, Any]:
    """The object as the API and the CSV export give it: hashes in lowercase hex."""
    out = dict(obj)
    out["hash"] = hash_.hex() if hash_ is not None else None
    out["prev_hash"] = prev_hash.hex() if prev_hash is not None else None
    return out


def split_served(document: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """(object without hashes, hash hex, prev_hash hex) of a served transaction, for verifiers."""
    obj = {key: value for key, value in document.items() if key not in ("hash", "prev_hash")}
    return obj, document.get("hash"), document.get("prev_hash")


def amounts_from_postings(postings: Any) -> tuple[list[str], list[int]]:
    """Back from served postings to (accounts, signed amounts); raises ValueError on a posting of the wrong shape."""
    if not isinstance(postings, list):
        raise ValueError("postings is not a list")
    accounts, amounts = [], []
    for posting in postings:
        # {"account", "debit_fen"} or {"account", "credit_fen"}, nothing else.
        if type(posting) is not dict or len(posting) != 2 or "account" not in posting:
            raise ValueError(f"posting {posting!r} is not {{account, debit_fen|credit_fen}}")
        if "debit_fen" in posting:
            value, sign = posting["debit_fen"], 1
        elif "credit_fen" in posting:
            value, sign = posting["credit_fen"], -1
        else:
            raise ValueError(f"posting {posting!r} is not {{account, debit_fen|credit_fen}}")
        if type(value) is not int or value <= 0:
            raise ValueError(f"posting {posting!r} does not move a positive integer number of fen")
        accounts.append(posting["account"])
        amounts.append(sign * value)
    return accounts, amounts
