"""A small HTTP client for the operator's and officers' command-line tools (`voucher-engine campaign | issuer |
merchant | key`): they talk to a running service with a bearer token, as any other client would, so that the
command line and the API can never disagree."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import httpx
import orjson
import typer

Url = Annotated[str, typer.Option("--url", envvar="VE", help="The service, e.g. http://127.0.0.1:8000 ($VE).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print only the answer's JSON (for jq and scripts).")]


# The token a command sends: $VE_TOKEN, else the one demo.env sets for the role the command is for.
GovToken = Annotated[
    str, typer.Option("--token", envvar=["VE_TOKEN", "GOV"], help="A gov bearer token ($VE_TOKEN, else $GOV).")
]
AdminToken = Annotated[
    str, typer.Option("--token", envvar=["VE_TOKEN", "ADMIN"], help="An admin bearer token ($VE_TOKEN, else $ADMIN).")
]


def call(
    url: str,
    token: str,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    text_body: str | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """One request; answers (status, parsed JSON or text). No answer at all exits 2 with one line."""
    headers = {"Authorization": f"Bearer {token}"}
    content: bytes | None = None
    if text_body is not None:
        headers["Content-Type"] = "text/plain; charset=utf-8"
        content = text_body.encode("utf-8")
    elif json_body is not None:
        headers["Content-Type"] = "application/json"
        content = orjson.dumps(json_body)
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, headers=headers, content=content, params=params, timeout=60
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: no answer from {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def show(status: int, document: Any, as_json: bool, summary: str | None = None) -> None:
    """Print an answer: a refusal as one line (`code: detail`, plus contract errors at their lines) and exit 1;
    otherwise the summary line, or the JSON with --json (or when there is no summary)."""
    if status >= 400:
        if as_json:
            sys.stdout.write(orjson.dumps(document).decode() + "\n")
        elif isinstance(document, dict):
            typer.echo(f"error: {document.get('code')}: {document.get('detail')}", err=True)
            for error in document.get("errors") or []:
                if "line" in error:
                    typer.echo(f"  line {error['line']}, column {error['column']}: {error['message']}", err=True)
            for warning in document.get("warnings") or []:  # a contract's warnings, beside its errors
                if isinstance(warning, dict) and "line" in warning:
                    typer.echo(
                        f"  warning: line {warning['line']}, column {warning['column']}: {warning['message']}",
                        err=True,
                    )
        else:
            typer.echo(f"error: HTTP {status}: {str(document)[:300]}", err=True)
        raise typer.Exit(1)
    if as_json or summary is None:
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        typer.echo(summary)


def yuan(fen: int) -> str:
    return f"¥{fen // 100:,}.{fen % 100:02d}" if fen >= 0 else "-" + yuan(-fen)
