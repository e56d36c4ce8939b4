"""Ids of campaigns, vouchers and issuances: opaque to clients, but of a fixed shape the voucher code relies on.

Voucher ids start with the time in milliseconds, so that a million vouchers of one issuance are appended to the
primary key's B-tree instead of scattered over it; their 64 random bits keep ids made in the same millisecond
apart. Unguessability of vouchers comes from the code's MAC (codes.py), not from the id.
"""

from __future__ import annotations

import os
import time


def new_campaign_id() -> str:
    return "cmp_" + os.urandom(8).hex()


def new_issuance_id() -> str:
    return "isu_" + os.urandom(12).hex()


def new_voucher_id() -> str:
    return f"vch_{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}{os.urandom(10).hex()}"


VOUCHER_ID_CHARS = 36
MAX_BLOCK = 1 << 24


def voucher_id_stem() -> str:
    """The first 30 characters of a block of up to `MAX_BLOCK` voucher ids: stem + f"{i:06x}" (a time prefix,
    a random stem, a counter)."""
    return f"vch_{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}{os.urandom(7).hex()}"


def voucher_id_block(count: int) -> list[str]:
    """`count` fresh voucher ids, in increasing order (one time prefix, one random stem, a counter)."""
    assert 0 <= count <= MAX_BLOCK, count
    stem = voucher_id_stem()
    return [f"{stem}{i:06x}" for i in range(count)]
