"""Shared helpers for the contract-language tests: load the policy files, build payments tersely."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

from voucher_engine.contracts import CompiledContract, Item, Payment, compile_contract

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
CST = dt.timezone(dt.timedelta(hours=8))

POLICY_FILES = (
    "shanghai-dining-2025",
    "appliance-trade-in-2025",
    "suzhou-ecny-red-envelope",
    "elderly-home-adaptation",
    "graduate-culture-sports",
    "county-fair-rural",
)


def source(name: str) -> str:
    return (CONTRACTS_DIR / f"{name}.contract").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def policy(name: str) -> CompiledContract:
    return compile_contract(source(name))


def cst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CST)


def pay(
    order_fen: int,
    mcc: str = "5812",
    region: str = "310104",
    tags: tuple[str, ...] = (),
    at: dt.datetime | None = None,
    items: tuple[Item, ...] = (),
    balance_fen: int | None = None,
) -> Payment:
    return Payment(mcc, region, frozenset(tags), at or cst(2025, 1, 15, 12, 0), order_fen, items, balance_fen)
