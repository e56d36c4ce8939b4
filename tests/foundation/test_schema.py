"""The tables the code declares are exactly what the migrations build (no drift)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from voucher_engine.db.engine import async_url
from voucher_engine.db.schema import metadata


async def test_migrations_match_the_declared_tables(database_url):
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as conn:

            def diff(sync_conn):
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(context, metadata)

            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []
