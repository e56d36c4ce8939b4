"""How an endpoint documents itself in the OpenAPI document: `operation(...)`, passed to the route decorator.

It lives in the HTTP kit so that every room can use it; `api/openapi.py` turns what it records into the served
document (examples in place, security schemes, the error codes by status) and explains the whole mechanism.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from voucher_engine.errors import ALL_CODES

# What operation() records on the route, read (and removed) by api/openapi.complete().
EXTRA_KEYS = ("x-ve-documented", "x-ve-errors", "x-ve-request-example", "x-ve-response-example")


def operation(
    summary: str,
    description: str,
    *,
    response_example: Any,
    request_example: Any = None,
    errors: Iterable[str] = (),
    openapi_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Route-decorator arguments that document an operation (see api/openapi.py's docstring). `openapi_extra`: what
    the route would otherwise pass as its own `openapi_extra` (a hand-written request body, for instance)."""
    unknown = set(errors) - ALL_CODES
    if unknown:
        raise ValueError(f"not error codes: {sorted(unknown)}")
    extra: dict[str, Any] = {
        **(openapi_extra or {}),
        "x-ve-documented": True,
        "x-ve-errors": sorted(set(errors)),
        "x-ve-response-example": response_example,
    }
    if request_example is not None:
        extra["x-ve-request-example"] = request_example
    return {"summary": summary, "description": description, "openapi_extra": extra}
