"""The served OpenAPI document, completed with what FastAPI cannot see: every error is problem+json.

FastAPI documents a 422 `{"detail": [...]}` as `application/json` for every operation with parameters, and nothing
for the 401/403/404/409/413/429/503 answers the handlers in problems.py give. Clients generated from the document
(and schemathesis) would then reject real answers. So each operation gets: its 422 and any content-less error
response it declares described as `application/problem+json` with the `Problem` schema, and a `default` response
of the same shape for every other error status.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from voucher_engine.errors import ALL_CODES
from voucher_engine.web.problems import PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457). `code` is one of the stable codes; rule failures add `explain`, "
    "validation failures `errors`; other members may be added.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": sorted(ALL_CODES)},
        "explain": {"type": "array", "items": {"type": "object"}},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}
_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Describe every error answer of every operation as problem+json (in place; answers the document)."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = dict(_PROBLEM_CONTENT)
            responses.setdefault(
                "default", {"description": "An error, as problem+json (RFC 9457).", "content": dict(_PROBLEM_CONTENT)}
            )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request, like FastAPI's own)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
