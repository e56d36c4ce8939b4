"""Logs: one structured line per request, and every other line of the engine in the same shape.

`VE_LOG_FORMAT=json|text`; under `serve` JSON by default. A request's line holds: time, request id (the caller's
`X-Request-Id` when it is a sane token, else a new one; echoed in the answer), method, route (the template, such
as `/v1/redemptions/{redemption_id}`, never the path with its ids), status, duration, caller role. What a line
never holds, by construction: headers, bodies, query strings, tokens, signatures, voucher codes, holder attributes.
Other log lines written while a request is handled carry its request id too (a context variable).

Lines are written to standard error once per turn of the event loop, all of that turn's lines in one write: a busy
worker answering hundreds of requests a turn makes one system call for them, not hundreds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from contextvars import ContextVar
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("ve_request_id", default=None)

_FD = 2


class _Writer:
    """Collects lines and writes them with one os.write per event-loop turn (at once outside a loop)."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, line: bytes) -> None:
        self._pending.append(line)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        try:
            while data:
                written = os.write(_FD, data)
                data = data[written:]
        except OSError:
            pass  # a closed or full stderr must not break requests


_writer = _Writer()
_format: str | None = None  # None: request lines off
_process = "api"


def request_lines_on() -> bool:
    return _format is not None


_second = -1
_second_text = ""
_pid = os.getpid()


def _now() -> str:
    """UTC, RFC 3339 with milliseconds; the seconds' text made once a second (a datetime per line cost microseconds)."""
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:
        _second, _second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second_text}.{int((now - second) * 1000):03d}+00:00"


def request_line(request_id: str, method: str, route: str, status: int, duration_s: float, role: str | None) -> None:
    """The one line of a request (a no-op unless configured)."""
    if _format == "json":
        _writer.write(
            orjson.dumps(
                {
                    "time": _now(),
                    "level": "info",
                    "msg": "request",
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration_s * 1000, 3),
                    "role": role,
                    "pid": _pid,
                }
            )
            + b"\n"
        )
    elif _format == "text":
        _writer.write(
            f"{_now()} INFO request request_id={request_id} {method} {route} {status} "
            f"{duration_s * 1000:.3f}ms role={role or '-'}\n".encode()
        )


class Handler(logging.Handler):
    """Every other log record, in the same format, with the current request's id when there is one."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            request_id = request_id_var.get()
            if _format == "json":
                line: dict[str, Any] = {
                    "time": _now(),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "msg": message,
                    "process": _process,
                    "pid": _pid,
                }
                if request_id:
                    line["request_id"] = request_id
                if record.exc_info:
                    line["exception"] = "".join(traceback.format_exception(*record.exc_info))[-8000:]
                _writer.write(orjson.dumps(line) + b"\n")
            else:
                rid = f" request_id={request_id}" if request_id else ""
                text = f"{_now()} {record.levelname} {record.name}{rid} {message}\n"
                if record.exc_info:
                    text += "".join(traceback.format_exception(*record.exc_info))
                _writer.write(text.encode())
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def configure(settings: Any, *, process: str = "api") -> None:
    """Install the format for this process: `settings.log_format`, else JSON when served, else leave logging be."""
    global _format, _process, _pid
    _pid = os.getpid()
    chosen = settings.log_format or ("json" if settings.served else None)
    _process = process
    _format = chosen
    if chosen is None:
        return
    handler = Handler(level=settings.log_level.upper())
    for name in ("voucher_engine", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(settings.log_level.upper())


def flush() -> None:
    _writer.flush()
    sys.stderr.flush()
