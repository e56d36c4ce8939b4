"""Alembic environment: runs migrations over asyncpg, one migrator at a time (an advisory lock)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from voucher_engine.db.engine import async_url
from voucher_engine.db.schema import metadata

# Several replicas may start at once; only one of them may migrate, the others wait for it.
MIGRATION_LOCK_KEY = 7_412_930_001


def _run(connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, compare_type=True, transaction_per_migration=True
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(async_url(context.config.attributes["database_url"]))
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            await connection.commit()
            try:
                await connection.run_sync(_run)
                await connection.commit()
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `voucher-engine migrate`")

asyncio.run(_main())
