"""Serving the console: `/console` and its static files, each answer with a content security policy.

The files are read once per worker (about 1.2 MB, ECharts being most of it) and answered with an ETag, so a browser
revalidates instead of downloading again. Only files under `static/` with a known type are served; everything else
is a 404 problem. The policy allows scripts, styles, images and API calls from this origin only: no other host, no
inline script, no eval, no framing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from voucher_engine.errors import EngineError

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent / "static"
MAX_PATH_CHARS = 200

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every servable file under static/, by its path relative to it (read once per worker)."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.rglob("*")):
        media_type = TYPES.get(path.suffix) if path.is_file() else None
        if media_type is None and path.is_file() and path.name in ("LICENSE", "NOTICE", "VERSION"):
            media_type = TYPES[".txt"]
        if media_type is not None:
            body = path.read_bytes()
            found[path.relative_to(STATIC).as_posix()] = Asset(
                body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            )
    return found


def _answer(request: Request, asset: Asset) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/console")
async def console_index(request: Request) -> Response:
    return _answer(request, assets()["index.html"])


@router.get("/console/{path:path}")
async def console_asset(path: str, request: Request) -> Response:
    asset = assets().get(path) if len(path) <= MAX_PATH_CHARS else None
    if asset is None:
        raise EngineError("NOT_FOUND", "No such console file.")
    return _answer(request, asset)
