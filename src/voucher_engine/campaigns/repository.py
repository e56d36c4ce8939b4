"""SQL of campaigns: rows in and out, set-based where lists are long. No business rules live here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from voucher_engine.db.schema.campaigns import (
    campaign_funder_decisions,
    campaign_funders,
    campaigns,
    claim_stock,
    issuances,
    vouchers,
)

# Columns of `vouchers` in the order issuance writes them by COPY.
VOUCHER_COPY_COLUMNS = (
    "campaign_id",
    "id",
    "wallet_id",
    "id_hash",
    "holder_key",
    "status",
    "valid_from",
    "valid_until",
    "face_value_fen",
    "balance_fen",
    "issued_at",
    "issuance_id",
    "version",
    "updated_at",
)


async def lock_campaign(conn: AsyncConnection, campaign_id: str) -> None:
    """Serialise the campaign's lifecycle moves, issuances and close with each other (not with claims, which
    meet close on the stock rows instead). Held to the end of the transaction."""
    await conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended('campaign/' || :id, 0))"), {"id": campaign_id}
    )


async def insert_campaign(
    conn: AsyncConnection, values: dict[str, Any], funders: list[dict[str, Any]], stock: list[int]
) -> None:
    await conn.execute(sa.insert(campaigns).values(**values))
    await conn.execute(sa.insert(campaign_funders), funders)
    if stock:
        await conn.execute(
            sa.insert(claim_stock),
            [
                {"campaign_id": values["id"], "shard": shard, "remaining": remaining}
                for shard, remaining in enumerate(stock)
            ],
        )


async def get_campaign(conn: AsyncConnection, campaign_id: str, *, for_update: bool = False) -> sa.Row | None:
    query = sa.select(campaigns).where(campaigns.c.id == campaign_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def find_by_name(conn: AsyncConnection, issuer_id: str, name: str) -> sa.Row | None:
    query = (
        sa.select(campaigns)
        .where(campaigns.c.issuer_id == issuer_id, campaigns.c.name == name)
        .order_by(campaigns.c.created_at.desc())
        .limit(1)
    )
    return (await conn.execute(query)).first()


async def list_campaigns(
    conn: AsyncConnection, *, issuer_id: str | None, after: str | None, limit: int
) -> list[sa.Row]:
    """A page of campaigns; with `issuer_id`, that issuer's own and those that name it as a co-funder."""
    query = sa.select(campaigns).order_by(campaigns.c.id).limit(limit)
    if issuer_id is not None:
        cofunded = sa.select(campaign_funders.c.campaign_id).where(campaign_funders.c.issuer_id == issuer_id)
        query = query.where(sa.or_(campaigns.c.issuer_id == issuer_id, campaigns.c.id.in_(cofunded)))
    if after is not None:
        query = query.where(campaigns.c.id > after)
    return list((await conn.execute(query)).all())


async def is_funder(conn: AsyncConnection, campaign_id: str, issuer_id: str) -> bool:
    query = sa.select(campaign_funders.c.position).where(
        campaign_funders.c.campaign_id == campaign_id, campaign_funders.c.issuer_id == issuer_id
    )
    return (await conn.execute(query)).first() is not None


async def count_decisions(conn: AsyncConnection, campaign_id: str, issuer_id: str) -> int:
    query = sa.select(sa.func.count()).where(
        campaign_funder_decisions.c.campaign_id == campaign_id, campaign_funder_decisions.c.issuer_id == issuer_id
    )
    return int((await conn.execute(query)).scalar_one())


async def record_decision(
    conn: AsyncConnection, *, campaign_id: str, issuer_id: str, decision: str, token_id: str, at: datetime
) -> None:
    """The funder's standing decision, and the same kept for good in the decisions' history."""
    await conn.execute(
        sa.update(campaign_funders)
        .where(campaign_funders.c.campaign_id == campaign_id, campaign_funders.c.issuer_id == issuer_id)
        .values(approval=decision, decided_by=token_id, decided_at=at)
    )
    await conn.execute(
        sa.insert(campaign_funder_decisions).values(
            campaign_id=campaign_id, issuer_id=issuer_id, decision=decision, token_id=token_id, decided_at=at
        )
    )


async def decisions_of(conn: AsyncConnection, campaign_id: str, *, limit: int) -> list[sa.Row]:
    """The campaign's funder decisions, oldest first (the last `limit` of them)."""
    latest = (
        sa.select(campaign_funder_decisions)
        .where(campaign_funder_decisions.c.campaign_id == campaign_id)
        .order_by(campaign_funder_decisions.c.id.desc())
        .limit(limit)
        .subquery()
    )
    return list((await conn.execute(sa.select(latest).order_by(latest.c.id))).all())


async def funders_of(conn: AsyncConnection, campaign_id: str) -> list[sa.Row]:
    query = (
        sa.select(campaign_funders)
        .where(campaign_funders.c.campaign_id == campaign_id)
        .order_by(campaign_funders.c.position)
    )
    return list((await conn.execute(query)).all())


async def funders_of_many(conn: AsyncConnection, campaign_ids: list[str]) -> dict[str, list[sa.Row]]:
    query = (
        sa.select(campaign_funders)
        .where(campaign_funders.c.campaign_id.in_(campaign_ids))
        .order_by(campaign_funders.c.campaign_id, campaign_funders.c.position)
    )
    out: dict[str, list[sa.Row]] = {campaign_id: [] for campaign_id in campaign_ids}
    for row in (await conn.execute(query)).all():
        out[row.campaign_id].append(row)
    return out


async def move_status(
    conn: AsyncConnection, campaign_id: str, allowed_from: tuple[str, ...], to: str, at: datetime, **extra: Any
) -> sa.Row | None:
    """Conditional move: answers the updated row, or None when the campaign was in none of `allowed_from`."""
    statement = (
        sa.update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(allowed_from))
        .values(status=to, updated_at=at, version=campaigns.c.version + 1, **extra)
        .returning(*campaigns.c)
    )
    return (await conn.execute(statement)).first()


async def update_campaign(conn: AsyncConnection, campaign_id: str, **values: Any) -> None:
    await conn.execute(sa.update(campaigns).where(campaigns.c.id == campaign_id).values(**values))


async def voucher_counts(conn: AsyncConnection, campaign_id: str) -> dict[str, int]:
    """Counts and issued face value: one aggregate over the campaign's vouchers (off the hot path)."""
    row = (
        await conn.execute(
            sa.text(
                "SELECT count(*) AS issued, coalesce(sum(face_value_fen), 0) AS issued_fen,"
                " count(*) FILTER (WHERE status = 'redeemed') AS redeemed,"
                " count(*) FILTER (WHERE status = 'expired') AS expired,"
                " count(*) FILTER (WHERE status = 'revoked') AS revoked"
                " FROM vouchers WHERE campaign_id = :id"
            ),
            {"id": campaign_id},
        )
    ).one()
    return {
        "issued": row.issued,
        "issued_fen": int(row.issued_fen),
        "redeemed": row.redeemed,
        "expired": row.expired,
        "revoked": row.revoked,
    }


async def count_vouchers(conn: AsyncConnection, campaign_id: str) -> int:
    return (
        await conn.execute(
            sa.select(sa.func.count()).select_from(vouchers).where(vouchers.c.campaign_id == campaign_id)
        )
    ).scalar_one()


async def latest_demo_voucher(conn: AsyncConnection, campaign_id: str) -> tuple[str, str, str] | None:
    """(id, wallet, status) of the demo voucher issued last (demo wallets count up from `demo.DEMO_WALLET`)."""
    query = (
        sa.select(vouchers.c.id, vouchers.c.wallet_id, vouchers.c.status)
        .where(vouchers.c.campaign_id == campaign_id, vouchers.c.wallet_id.like("00000000000%"))
        .order_by(vouchers.c.wallet_id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return (row.id, row.wallet_id, row.status) if row else None


async def end_stock(conn: AsyncConnection, campaign_id: str) -> None:
    """Zero a first-come campaign's stock. Waits for claims holding a shard, so that after it no claim that
    started before can still add a voucher."""
    await conn.execute(sa.update(claim_stock).where(claim_stock.c.campaign_id == campaign_id).values(remaining=0))


async def stock_remaining(conn: AsyncConnection, campaign_id: str) -> int:
    return int(
        (
            await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(claim_stock.c.remaining), 0)).where(
                    claim_stock.c.campaign_id == campaign_id
                )
            )
        ).scalar_one()
    )


async def end_unspent_vouchers(conn: AsyncConnection, campaign_id: str, to: str, at: datetime) -> int:
    """Every still-spendable voucher of the campaign becomes `to` (revoked or expired); answers how many."""
    result = await conn.execute(
        sa.update(vouchers)
        .where(vouchers.c.campaign_id == campaign_id, vouchers.c.status == "issued")
        .values(status=to, updated_at=at, version=vouchers.c.version + 1)
    )
    return result.rowcount


async def latest_valid_until(conn: AsyncConnection, campaign_id: str) -> datetime | None:
    return (
        await conn.execute(sa.select(sa.func.max(vouchers.c.valid_until)).where(vouchers.c.campaign_id == campaign_id))
    ).scalar_one()


async def wallet_vouchers(
    conn: AsyncConnection, wallet_id: str, *, issuer_id: str | None, after: tuple[str, str] | None, limit: int
) -> list[sa.Row]:
    query = (
        sa.select(vouchers, campaigns.c.summary, campaigns.c.issuer_id, campaigns.c.timezone)
        .join(campaigns, campaigns.c.id == vouchers.c.campaign_id)
        .where(vouchers.c.wallet_id == wallet_id)
        .order_by(vouchers.c.campaign_id, vouchers.c.id)
        .limit(limit)
    )
    if issuer_id is not None:
        query = query.where(campaigns.c.issuer_id == issuer_id)
    if after is not None:
        query = query.where(sa.tuple_(vouchers.c.campaign_id, vouchers.c.id) > sa.tuple_(*after))
    return list((await conn.execute(query)).all())


async def get_voucher(conn: AsyncConnection, campaign_id: str, voucher_id: str) -> sa.Row | None:
    query = sa.select(vouchers).where(vouchers.c.campaign_id == campaign_id, vouchers.c.id == voucher_id)
    return (await conn.execute(query)).first()


# ---------------------------------------------------------------------------------------------------------------
# Issuances.


async def insert_issuance(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(sa.insert(issuances).values(**values))


async def update_issuance(conn: AsyncConnection, issuance_id: str, **values: Any) -> None:
    await conn.execute(sa.update(issuances).where(issuances.c.id == issuance_id).values(**values))


async def get_issuance(conn: AsyncConnection, issuance_id: str) -> sa.Row | None:
    query = (
        sa.select(issuances, campaigns.c.issuer_id)
        .join(campaigns, campaigns.c.id == issuances.c.campaign_id)
        .where(issuances.c.id == issuance_id)
    )
    return (await conn.execute(query)).first()


async def fail_stale_issuances(conn: AsyncConnection, older_than: datetime, at: datetime) -> int:
    """Jobs whose worker died (no progress for a while) are marked failed; their vouchers were never committed,
    because an issuance writes all its vouchers in one transaction."""
    result = await conn.execute(
        sa.update(issuances)
        .where(issuances.c.status == "running", issuances.c.updated_at < older_than)
        .values(
            status="failed",
            error="the worker running this issuance stopped; nothing was issued",
            finished_at=at,
            updated_at=at,
        )
    )
    return result.rowcount


# -- expiry (expiry.py) --------------------------------------------------------------------------------------------

# The due rows are chosen once (a MATERIALIZED CTE): as a subquery in FROM, a plan that rescans it would run the
# LIMIT ... SKIP LOCKED again and could expire more than `limit` vouchers.
_EXPIRE_ONE_CAMPAIGN = sa.text(
    "WITH due AS MATERIALIZED ("
    "    SELECT campaign_id, id FROM vouchers"
    "     WHERE campaign_id = :campaign_id AND status = 'issued' AND valid_until <= :now"
    "     LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " UPDATE vouchers v SET status = 'expired', updated_at = :now, version = v.version + 1"
    " FROM due WHERE v.campaign_id = due.campaign_id AND v.id = due.id AND v.status = 'issued'"
)

# A fixed-window campaign's vouchers all share its window: none is due before the campaign's own end, so the sweep
# looks only at those past it, and at campaigns whose windows run from each voucher's issue.
_OPEN_CAMPAIGNS = sa.text(
    "SELECT id FROM campaigns WHERE status IN ('funded', 'active', 'paused')"
    " AND (validity_seconds IS NOT NULL OR valid_until <= :now) ORDER BY id"
)


async def expire_due_vouchers(conn: AsyncConnection, campaign_id: str, now: datetime, limit: int) -> int:
    """Expire up to `limit` vouchers of the campaign past their window (skipping rows another batch holds)."""
    result = await conn.execute(_EXPIRE_ONE_CAMPAIGN, {"campaign_id": campaign_id, "now": now, "limit": limit})
    return result.rowcount


async def campaigns_with_due_vouchers(conn: AsyncConnection, now: datetime) -> list[str]:
    """The open campaigns that may have vouchers past their window at `now`."""
    return list((await conn.execute(_OPEN_CAMPAIGNS, {"now": now})).scalars())


async def expire_all_due_vouchers(conn: AsyncConnection, campaign_id: str, now: datetime) -> int:
    result = await conn.execute(
        sa.text(
            "UPDATE vouchers SET status = 'expired', updated_at = :now, version = version + 1"
            " WHERE campaign_id = :campaign_id AND status = 'issued' AND valid_until <= :now"
        ),
        {"campaign_id": campaign_id, "now": now},
    )
    return result.rowcount


async def expire_voucher_if_due(conn: AsyncConnection, campaign_id: str, voucher_id: str, now: datetime) -> bool:
    result = await conn.execute(
        sa.text(
            "UPDATE vouchers SET status = 'expired', updated_at = :now, version = version + 1"
            " WHERE campaign_id = :campaign_id AND id = :voucher_id AND status = 'issued' AND valid_until <= :now"
        ),
        {"campaign_id": campaign_id, "voucher_id": voucher_id, "now": now},
    )
    return result.rowcount == 1


async def try_session_lock(conn: AsyncConnection, key: int) -> bool:
    """A session-level advisory lock (one worker sweeps at a time); False when another session holds it."""
    return (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar() is True


async def session_unlock(conn: AsyncConnection, key: int) -> None:
    await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})


# -- first-come claims (claims.py): one call of the SQL function of migration 0015 per campaign and batch -----------

CLAIMS_SQL = (
    "SELECT campaign_claims_by_token($14::text[], $1, $2::text[], $3::text[], $4::text[], $5, $6, $7::timestamptz[],"
    " $8::timestamptz[], $9::timestamptz[], $10, $11::text[], $12::bytea[], $13::text[])"
)


async def claim_batch(
    conn: asyncpg.Connection,
    campaign_id: str,
    *,
    voucher_ids: list[str],
    wallet_ids: list[str],
    id_hashes: list[str | None],
    per_holder_limit: int,
    first_shard: int,
    claimed_at: list[datetime],
    valid_from: list[datetime],
    valid_until: list[datetime],
    face_value_fen: int,
    jtis: list[str | None],
    attestation_sha256s: list[bytes | None],
    attester_ids: list[str | None],
    token_ids: list[str],
) -> list[str]:
    """Decide a batch of one campaign's claims in one statement and transaction; answer one result per claim, in
    order: OK, SOLD_OUT, HOLDER_LIMIT, CAMPAIGN_NOT_ACTIVE, RETRY (stock held by another batch), a replay mark, or
    UNAUTHENTICATED (the claim's bearer token, `token_ids`, is revoked: checked in the same statement)."""
    results = await conn.fetchval(
        CLAIMS_SQL,
        campaign_id,
        voucher_ids,
        wallet_ids,
        id_hashes,
        per_holder_limit,
        first_shard,
        claimed_at,
        valid_from,
        valid_until,
        face_value_fen,
        jtis,
        attestation_sha256s,
        attester_ids,
        token_ids,
    )
    return list(results)


# -- issuance (issuance.py): a binary COPY of vouchers, and who holds how many ------------------------------------


async def copy_vouchers(raw: asyncpg.Connection, source: AsyncIterator[bytes]) -> None:
    """COPY vouchers in PostgreSQL's binary format (rows of VOUCHER_COPY_COLUMNS, header and trailer included)."""
    await raw.copy_to_table("vouchers", source=source, columns=VOUCHER_COPY_COLUMNS, format="binary")


async def vouchers_held_by_holder(raw: asyncpg.Connection, campaign_id: str) -> dict[str, int]:
    """Vouchers of the campaign per holder key, in one pass over its primary key range (no per-holder index:
    issued vouchers are kept out of the holder index, which only claims need)."""
    held: dict[str, int] = {}
    async for record in raw.cursor(
        "SELECT holder_key, count(*) AS held FROM vouchers WHERE campaign_id = $1 GROUP BY holder_key",
        campaign_id,
        prefetch=10_000,
    ):
        held[record["holder_key"]] = record["held"]
    return held
