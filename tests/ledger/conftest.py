"""Fixtures for the ledger: an engine over a fresh database, a signing key, and a small books seeder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone

import asyncpg
import pytest
import pytest_asyncio

from voucher_engine.db.engine import create_engine, plain_url
from voucher_engine.ledger import checkpoints, sequencer
from voucher_engine.ledger import service as ledger
from voucher_engine.ledger.model import NewTransaction, Posting

AT = datetime(2025, 3, 1, 2, 0, 0, 123456, tzinfo=timezone.utc)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(database_url: str) -> AsyncIterator:
    eng = create_engine(database_url, pool_size=4)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def signing_key(tmp_path):
    return checkpoints.load_signing_key(tmp_path / "ledger-signing.key")


@pytest.fixture
def public_key(signing_key) -> bytes:
    return checkpoints.raw_public_key(signing_key)


def fund(campaign: str, parts: dict[str, int]) -> NewTransaction:
    postings = [Posting(f"fiscal:{funder}", credit_fen=amount) for funder, amount in parts.items()]
    postings.append(Posting(f"escrow:{campaign}", debit_fen=sum(parts.values())))
    return NewTransaction(
        kind="fund", postings=tuple(postings), refs={"shares_bp": dict.fromkeys(parts, 1)}, at=AT, campaign_id=campaign
    )


def redeem(campaign: str, merchant: str, amount: int, voucher: str) -> NewTransaction:
    return NewTransaction(
        kind="redeem",
        campaign_id=campaign,
        at=AT,
        postings=(Posting(f"escrow:{campaign}", credit_fen=amount), Posting(f"merchant:{merchant}", debit_fen=amount)),
        refs={"voucher_id": voucher, "redemption_id": f"rdm_{voucher}", "merchant_id": merchant},
    )


def refund(campaign: str, merchant: str, amount: int, voucher: str) -> NewTransaction:
    return NewTransaction(
        kind="refund",
        campaign_id=campaign,
        at=AT,
        postings=(Posting(f"merchant:{merchant}", credit_fen=amount), Posting(f"escrow:{campaign}", debit_fen=amount)),
        refs={"voucher_id": voucher, "refund_id": f"rf_{voucher}", "merchant_id": merchant},
    )


def give_back(campaign: str, parts: dict[str, int]) -> NewTransaction:
    postings = [Posting(f"escrow:{campaign}", credit_fen=sum(parts.values()))]
    postings += [Posting(f"fiscal:{funder}", debit_fen=amount) for funder, amount in parts.items()]
    return NewTransaction(kind="return", postings=tuple(postings), refs={}, at=AT, campaign_id=campaign)


async def open_accounts(conn, *names: str) -> None:
    for name in names:
        await ledger.open_account(conn, name)


async def seed(engine, *, redemptions: int = 20, campaigns: int = 2) -> None:
    """Two funders, `campaigns` campaigns, three merchants, redemptions, a refund and a return; all sequenced."""
    async with engine.begin() as conn:
        await open_accounts(conn, "fiscal:iss_310000", "fiscal:iss_310104", "merchant:m1", "merchant:m2", "merchant:m3")
        for c in range(campaigns):
            await open_accounts(conn, f"escrow:cmp_{c}")
            await ledger.post(conn, fund(f"cmp_{c}", {"iss_310000": 60_000, "iss_310104": 40_000}))
    for start in range(0, redemptions, 7):
        async with engine.begin() as conn:
            await ledger.post_many(
                conn,
                [
                    redeem(f"cmp_{i % campaigns}", f"m{i % 3 + 1}", 100 + i, f"vch_{i}")
                    for i in range(start, min(redemptions, start + 7))
                ],
            )
    async with engine.begin() as conn:
        await ledger.post(conn, refund("cmp_0", "m1", 100, "vch_0"))
        await ledger.post(conn, give_back(f"cmp_{campaigns - 1}", {"iss_310000": 1_000, "iss_310104": 500}))
    await sequencer.drain(engine)


async def superuser(database_url: str) -> asyncpg.Connection:
    """A direct connection as the database owner (postgres), to tamper behind the engine's back."""
    return await asyncpg.connect(plain_url(database_url))
