"""Bring a database to the newest schema with Alembic, which owns every schema change."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

import voucher_engine
from voucher_engine.config import Settings, get_settings


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the installed wheel, or at the top of a source checkout."""
    packaged = Path(voucher_engine.__file__).parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(voucher_engine.__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Passed as an attribute, not an option: ConfigParser would mangle the '%' of encoded passwords.
    config.attributes["database_url"] = url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


async def current_revision(conn: AsyncConnection) -> str | None:
    """The revision the database's schema is at (None before the first migration finished)."""
    return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()


def upgrade(url: str) -> None:
    """Run every pending migration (synchronously; call from outside a running event loop)."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)


def prepare_database(settings: Settings, *, existing: bool = False) -> str:
    """Start the embedded PostgreSQL when no DATABASE_URL is given, bring the schema to head, answer the URL.

    `existing`: the command reads data that must already be there (ledger verify, issue), so a data folder without
    engine data raises `embedded.NoEngineData` instead of being created. The URL is also put into this process's
    environment, so that worker processes started later inherit it.
    """
    from voucher_engine.db import embedded  # the embedded PostgreSQL wheel is loaded only when it is needed

    if existing and not settings.database_url:
        embedded.require_engine_data(settings.data_dir)
    url = settings.database_url or embedded.start(settings.data_dir)
    upgrade(url)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    return url
