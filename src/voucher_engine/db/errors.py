"""Telling "the database is down" apart from a bug, so that the API answers 503 rather than 500."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

_UNAVAILABLE = (
    ConnectionError,
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 8:  # walk the cause chain a bounded number of links
        if isinstance(exc, _UNAVAILABLE):
            return True
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError) and exc.orig is None:
            return True
        orig = getattr(exc, "orig", None)
        exc = orig if orig is not None and orig is not exc else exc.__cause__
        seen += 1
    return False
