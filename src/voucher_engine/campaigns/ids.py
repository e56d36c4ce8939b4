"""Ids of campaigns, vouchers and issuances: opaque to clients, but of a fixed shape the voucher code relies on.

Voucher ids start with the time in milliseconds, so that a million vouchers of one issuance are appended to the
primary key's B-tree instead of scattered over it. Every id also carries random bits of its own (80 for a single
id, 56 in a block), so that knowing one voucher's id says nothing about any other's: a block's ids are ordered by
a counter placed *before* each id's random tail, never by a counter at the end that would make the neighbours of
a known id guessable. (The code's MAC, codes.py, is what makes a voucher spendable; ids are not secrets, but they
must not let anyone enumerate vouchers either.)
"""

from __future__ import annotations

import os
import time

from voucher_engine.invariants import invariant


def new_campaign_id() -> str:
    return "cmp_" + os.urandom(8).hex()


def new_issuance_id() -> str:
    return "isu_" + os.urandom(12).hex()


def new_voucher_id() -> str:
    return f"vch_{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}{os.urandom(10).hex()}"


VOUCHER_ID_CHARS = 36
MAX_BLOCK = 1 << 24


# Each id of a block: "vch_" + 12 hex of milliseconds + 6 hex of counter + 14 hex (56 bits) of its own randomness.
VOUCHER_ID_NOISE_CHARS = 14


def voucher_id_stem() -> str:
    """The first 16 characters of a block of up to `MAX_BLOCK` voucher ids (the time prefix); the i-th id of the
    block is stem + f"{i:06x}" + its 14 characters of `voucher_id_noise`."""
    return f"vch_{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}"


def voucher_id_noise(count: int) -> str:
    """The random tails of `count` ids, concatenated (one system call for the whole block)."""
    return os.urandom(VOUCHER_ID_NOISE_CHARS // 2 * count).hex()


def voucher_id_block(count: int) -> list[str]:
    """`count` fresh voucher ids, in increasing order (one time prefix, a counter, each id's own random tail)."""
    invariant(0 <= count <= MAX_BLOCK, "a block of voucher ids is at most MAX_BLOCK", count)
    stem = voucher_id_stem()
    noise = voucher_id_noise(count)
    width = VOUCHER_ID_NOISE_CHARS
    return [f"{stem}{i:06x}{noise[width * i : width * (i + 1)]}" for i in range(count)]
