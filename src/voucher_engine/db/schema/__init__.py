"""The one `MetaData` every table of the engine is declared on; Alembic's migrations must build exactly this.

Each domain declares its tables in a module of its own here (foundation, ledger, campaigns, redemption,
reliability) so that the schema reads as the money path does; importing this package imports them all.
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

from . import foundation  # noqa: E402,F401  (registers tables on `metadata`)

for _optional in (
    "ledger",
    "campaigns",
    "redemption",
    "reliability",
    "stats",
    "settlement",
    "attestations",
    "webhooks",
):
    # Domains land one by one; a module that is not written yet simply declares nothing.
    try:
        __import__(f"{__name__}.{_optional}")
    except ModuleNotFoundError as exc:  # pragma: no cover - only while a domain is absent
        if exc.name != f"{__name__}.{_optional}":
            raise
