"""The served OpenAPI document: every operation described for the people who integrate with it, and every error
answered as problem+json.

**How an endpoint is documented** (every operation must be; `tests/docs/test_openapi_complete.py` fails for one
that is not). Pass `**operation(...)` (from `voucher_engine.web.openapi`, so that every room can use it) to the route decorator:

    @router.post("/v1/things", status_code=201, response_model=Thing, **operation(
        "Create a thing",                                   # summary: what it does, in a few words
        "Who may call it, what it changes, what it answers.",   # description (Markdown)
        request_example={"name": "..."},                    # an example body, where the operation takes one
        response_example={"id": "thg_...", "name": "..."},   # an example of the success answer
        errors=["CONFLICT", "INSUFFICIENT_FUNDS"],           # codes of its own; the common ones are added (below)
    ))

What `complete()` then does for every operation, so that no endpoint repeats it:
- **Security.** FastAPI shows the credentials an endpoint reads (`Authorization`, the four `X-VE-*` signing headers)
  as optional header parameters. They are taken out and stated as security requirements instead: `bearer` (HTTP
  bearer) or the four `X-VE-*` headers together, each an `apiKey` scheme in `components.securitySchemes`.
- **Errors.** The codes an operation can answer are its own (`errors=`) plus those that follow from its shape:
  `UNAUTHENTICATED`/`FORBIDDEN` with a bearer token, the signing codes for a till, `VALIDATION_ERROR` with any input,
  `PAYLOAD_TOO_LARGE` with a body, `NOT_FOUND` with a path parameter, `UNAVAILABLE` with the database. Each is
  listed in `x-error-codes` and under its HTTP status as `application/problem+json`, with an example per code.
- **Examples** go where clients and the docs pages look for them (`example` of the request and success media).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from voucher_engine.errors import ALL_CODES
from voucher_engine.web.openapi import EXTRA_KEYS, operation
from voucher_engine.web.problems import PROBLEM_MEDIA_TYPE, STATUS_BY_CODE, problem_document

__all__ = ["complete", "install", "operation"]

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


SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token of role admin, gov or auditor (`voucher-engine token create`, `POST /v1/tokens`).",
    },
    "veKeyId": {"type": "apiKey", "in": "header", "name": "X-VE-Key-Id", "description": "The POS key's id."},
    "veTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": "X-VE-Timestamp",
        "description": "Unix seconds; within 300 s of the server's clock.",
    },
    "veNonce": {
        "type": "apiKey",
        "in": "header",
        "name": "X-VE-Nonce",
        "description": "16-64 characters of [A-Za-z0-9_-], never reused under the key.",
    },
    "veSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-VE-Signature",
        "description": "Lowercase hex HMAC-SHA256(secret, METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nHEX_SHA256(BODY)).",
    },
}
SIGNED: dict[str, list[str]] = {"veKeyId": [], "veTimestamp": [], "veNonce": [], "veSignature": []}
_SIGNING_HEADERS = {"x-ve-key-id", "x-ve-timestamp", "x-ve-nonce", "x-ve-signature"}
# Operations that need no database answer without UNAVAILABLE.
_NO_DATABASE = {"/healthz", "/v1/ledger/public-key"}
EXAMPLE_DETAILS: dict[str, str] = {
    "UNAUTHENTICATED": "A bearer token is required.",
    "FORBIDDEN": "This role may not do that.",
    "BAD_SIGNATURE": "The request's signature does not match.",
    "STALE_REQUEST": "X-VE-Timestamp is more than 300 s from the server's clock.",
    "REPLAYED_REQUEST": "This nonce was already used under this key.",
    "VALIDATION_ERROR": "The request does not match the expected shape.",
    "NOT_FOUND": "No such thing.",
    "PAYLOAD_TOO_LARGE": "The body is larger than 1048576 bytes.",
    "UNAVAILABLE": "The database is unreachable; try again shortly.",
}


def _take_credentials(operation_doc: dict[str, Any]) -> str | None:
    """Move the credential headers out of the parameters into a security requirement; answer which kind."""
    parameters = operation_doc.get("parameters", [])
    names = {p["name"].lower() for p in parameters if p.get("in") == "header"}
    kind = "signed" if names & _SIGNING_HEADERS else "bearer" if "authorization" in names else None
    kept = [
        p
        for p in parameters
        if not (p.get("in") == "header" and p["name"].lower() in _SIGNING_HEADERS | {"authorization"})
    ]
    if kept:
        operation_doc["parameters"] = kept
    else:
        operation_doc.pop("parameters", None)
    if kind == "signed":
        operation_doc["security"] = [SIGNED]
    elif kind == "bearer":
        operation_doc["security"] = [{"bearer": []}]
    else:
        operation_doc["security"] = []
    return kind


def error_codes(path: str, operation_doc: dict[str, Any], kind: str | None) -> list[str]:
    """The codes an operation can answer: its own and those that follow from its shape."""
    codes = set(operation_doc.get("x-ve-errors", ()))
    if kind == "bearer":
        codes |= {"UNAUTHENTICATED", "FORBIDDEN"}
    if kind == "signed":
        codes |= {"BAD_SIGNATURE", "STALE_REQUEST", "REPLAYED_REQUEST"}
    parameters = operation_doc.get("parameters", [])
    if parameters or "requestBody" in operation_doc:
        codes.add("VALIDATION_ERROR")
    if "requestBody" in operation_doc:
        codes.add("PAYLOAD_TOO_LARGE")
    if any(p.get("in") == "path" for p in parameters):
        codes.add("NOT_FOUND")
    if path not in _NO_DATABASE:
        codes.add("UNAVAILABLE")
    return sorted(codes)


def _place_examples(operation_doc: dict[str, Any]) -> None:
    request_example = operation_doc.get("x-ve-request-example")
    if request_example is not None and "requestBody" in operation_doc:
        for media_type, media in operation_doc["requestBody"].get("content", {}).items():
            if media_type == "application/json":  # other media (text/plain contracts) have their own shape
                media["example"] = request_example
    if "x-ve-response-example" not in operation_doc:
        return
    for status, response in operation_doc["responses"].items():
        if status.startswith("2"):
            for media in response.setdefault("content", {"application/json": {}}).values():
                media["example"] = operation_doc["x-ve-response-example"]
            break


def _error_responses(operation_doc: dict[str, Any], codes: list[str]) -> None:
    responses = operation_doc["responses"]
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(STATUS_BY_CODE.get(code, 422), []).append(code)
    for status, status_codes in sorted(by_status.items()):
        response = responses.setdefault(str(status), {})
        response["description"] = "problem+json; `code` one of: " + ", ".join(f"`{c}`" for c in status_codes)
        response["content"] = {
            PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "examples": {
                    code: {"value": problem_document(code, EXAMPLE_DETAILS.get(code, "(an example)"), status)}
                    for code in status_codes
                },
            }
        }


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Security, error codes and examples for every operation; every error answer as problem+json (in place)."""
    for path, item in document.get("paths", {}).items():
        for operation_doc in item.values():
            if not isinstance(operation_doc, dict) or "responses" not in operation_doc:
                continue
            kind = _take_credentials(operation_doc)
            codes = error_codes(path, operation_doc, kind)
            _place_examples(operation_doc)
            responses = operation_doc["responses"]
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = dict(_PROBLEM_CONTENT)
            _error_responses(operation_doc, codes)
            responses.setdefault(
                "default", {"description": "An error, as problem+json (RFC 9457).", "content": dict(_PROBLEM_CONTENT)}
            )
            operation_doc["x-error-codes"] = codes
            for key in EXTRA_KEYS:
                operation_doc.pop(key, None)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request, like FastAPI's own), and the
    Swagger UI (/docs) and ReDoc (/redoc) pages with their scripts and styles from this server: an offline network
    (a government's) gets working pages, and no page loads anything from another host."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _serve_docs_pages(app)


DOCS_ASSETS = "/docs/assets"


def _assets_dir() -> Path:
    """The Swagger UI and ReDoc bundles, as the fastapi-offline wheel ships them (its files only: the pages are
    FastAPI's own, pointed at this server)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _serve_docs_pages(app: FastAPI) -> None:
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    title = f"{app.title} — API"
    app.mount(DOCS_ASSETS, StaticFiles(directory=_assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
