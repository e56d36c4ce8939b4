"""Telling "the database is down" (503) and "the input cannot be stored" (422) apart from a bug (500)."""

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


def is_database_unavailable(exc: BaseException | None) -> bool:
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


# Text PostgreSQL cannot hold: a NUL character (U+0000) in a text column or in JSONB. Valid JSON may carry one
# ("\u0000"), so it reaches the database unless refused there; it is the caller's input, not a bug.
_UNSTORABLE = (asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.exceptions.UntranslatableCharacterError)


def is_unstorable_input(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, _UNSTORABLE):
            return True
        orig = getattr(exc, "orig", None)
        exc = orig if orig is not None and orig is not exc else exc.__cause__
        seen += 1
    return False


def violated_constraint(exc: BaseException) -> str | None:
    """The name of the constraint a database error says was violated (a CHECK, a unique key, a foreign key), or
    None. Errors are classified by this name, never by searching their message text: a message that happens to
    mention "balance" says nothing about which rule broke."""
    current: BaseException | None = exc
    seen = 0
    while current is not None and seen < 8:
        if isinstance(current, asyncpg.exceptions.IntegrityConstraintViolationError):
            return getattr(current, "constraint_name", None)
        orig = getattr(current, "orig", None)
        current = orig if orig is not None and orig is not current else current.__cause__
        seen += 1
    return None
