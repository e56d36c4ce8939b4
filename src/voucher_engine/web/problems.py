"""problem+json (RFC 9457) for every error the service answers, including FastAPI's and Starlette's own."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voucher_engine.errors import EngineError

log = logging.getLogger("voucher_engine.api")

STATUS_BY_CODE: dict[str, int] = {
    "UNAUTHENTICATED": 401,
    "BAD_SIGNATURE": 401,
    "STALE_REQUEST": 401,
    "REPLAYED_REQUEST": 401,
    "FORBIDDEN": 403,
    "MERCHANT_SUSPENDED": 403,
    "VOUCHER_NOT_HOLDER": 403,
    "NOT_FOUND": 404,
    "VOUCHER_UNKNOWN": 404,
    "METHOD_NOT_ALLOWED": 405,
    "INVALID_STATE": 409,
    "CAMPAIGN_NOT_ACTIVE": 409,
    "VOUCHER_ALREADY_REDEEMED": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "DAILY_BUDGET_EXHAUSTED": 409,
    "SOLD_OUT": 409,
    "HOLDER_LIMIT": 409,
    "INSUFFICIENT_FUNDS": 409,
    "FUNDING_NOT_APPROVED": 409,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "HEADERS_TOO_LARGE": 431,
    "VALIDATION_ERROR": 422,
    "CONTRACT_INVALID": 422,
    "VOUCHER_EXPIRED": 422,
    "VOUCHER_NOT_YET_VALID": 422,
    "VOUCHER_REVOKED": 422,
    "RULE_NOT_SATISFIED": 422,
    "REFUND_EXCEEDS_ORDER": 422,
    "NOT_ELIGIBLE": 422,
    "ATTESTATION_INVALID": 422,
    "RISK_REFUSED": 422,
    "RATE_LIMITED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}

UNSTORABLE_DETAIL = "Text in the request must not contain NUL (U+0000) characters."
TITLES: dict[str, str] = {code: code.replace("_", " ").capitalize() for code in STATUS_BY_CODE}
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_document(code: str, detail: str, status: int | None = None, **extra: Any) -> dict[str, Any]:
    status = status or STATUS_BY_CODE[code]
    return {
        "type": f"https://voucher-engine.dev/problems/{code.lower().replace('_', '-')}",
        "title": TITLES.get(code, code),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(
    code: str, detail: str, status: int | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    document = problem_document(code, detail, status, **extra)
    return JSONResponse(document, status_code=document["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Echo where and why, never the offending input itself: it may be huge or hold secrets.
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())][:16],
            "message": str(error.get("msg", ""))[:300],
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()[:50]
    ]


def shape_detail(errors: list[dict[str, Any]]) -> str:
    """The sentence of a VALIDATION_ERROR: where the first problem is and what it is, so that a person reading only
    `detail` can fix the request (a misplaced key above all: it is refused, never ignored)."""
    if not errors:
        return "The request does not match the expected shape."
    first = errors[0]
    where = ".".join(part for part in first["loc"] if part != "body") or "the body"
    if first["type"] == "extra_forbidden":
        hint = ""
        if "items" in first["loc"]:
            hint = (
                " An order item takes only sku, category, amount_fen and attributes; what the contract reads about an"
                " item (energy_grade, trade_in_certificate, ...) goes under attributes."
            )
        return f"Unknown field {where}: it is not part of this request.{hint}"
    more = f" ({len(errors) - 1} more in `errors`)" if len(errors) > 1 else ""
    return f"The request does not match the expected shape: {where}: {first['message']}{more}."


def install(app: FastAPI) -> None:
    """Turn every error the app can raise into problem+json."""

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        headers = {"Retry-After": str(exc.extra.get("retry_after_s", 1))} if exc.code == "RATE_LIMITED" else None
        return problem_response(exc.code, exc.detail, headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(error["type"] == "json_invalid" for error in errors):
            return problem_response("VALIDATION_ERROR", "The body is not valid JSON.", status=400, errors=errors)
        return problem_response("VALIDATION_ERROR", shape_detail(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "NOT_FOUND",
            405: "METHOD_NOT_ALLOWED",
            413: "PAYLOAD_TOO_LARGE",
            401: "UNAUTHENTICATED",
            403: "FORBIDDEN",
        }.get(exc.status_code, "VALIDATION_ERROR")
        detail = exc.detail if isinstance(exc.detail, str) else TITLES[code]
        return problem_response(code, detail, status=exc.status_code, headers=getattr(exc, "headers", None))

    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from voucher_engine.db.errors import is_database_unavailable, is_unstorable_input

        if is_database_unavailable(exc):
            return problem_response(
                "UNAVAILABLE", "The database is unreachable; try again shortly.", headers={"Retry-After": "1"}
            )
        if is_unstorable_input(exc):
            return problem_response("VALIDATION_ERROR", UNSTORABLE_DETAIL)
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response("INTERNAL", "An unexpected error occurred; it has been logged.")

    # Database and connection errors by class, so that they are answered (503 while the database is away, 422 for
    # text it cannot store) like any other handled error; Starlette re-raises what only the catch-all handles.
    import asyncpg
    from sqlalchemy import exc as sa_exc

    for database_error in (sa_exc.DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        app.add_exception_handler(database_error, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
