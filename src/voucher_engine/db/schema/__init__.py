"""The one `MetaData` every table of the engine is declared on; Alembic's migrations must build exactly this.

Each room declares its tables in a module of its own here, so that the schema reads as the money path does;
importing this package imports them all (listed at the bottom).
"""

from __future__ import annotations

import sqlalchemy as sa

# Deterministic constraint names, so that migrations and the drift test agree on them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Every room's tables, registered on `metadata` by importing their module. A new room adds its module here.
from . import (  # noqa: E402,F401
    attestations,
    campaigns,
    foundation,
    ledger,
    redemption,
    reliability,
    risk,
    risk_windows,
    settlement,
    stats,
    webhooks,
)
