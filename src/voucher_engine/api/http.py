"""uvicorn's httptools protocol, writing each response in one piece and bounding each request's head.

uvicorn writes a response's status line and headers when the app sends `http.response.start`, and its body when the
app sends `http.response.body`: two system calls, two TCP segments and, for a till waiting on the answer, two
wake-ups, for an answer of a few hundred bytes. Here the head waits for the first piece of the body and leaves with
it. Nothing else changes: a `100 Continue` still goes out at once, a response without a body (HEAD) is sent when it
completes, and a closing connection sends what it holds first.

uvicorn's httptools protocol puts no bound on a request's head (a 1 MB header and 20,000 headers were accepted).
Here a head over `MAX_HEAD_BYTES` (request line and headers) or `MAX_HEADERS` header lines is answered 431
`HEADERS_TOO_LARGE` (problem+json) and the connection closed, before the app sees the request.

`voucher-engine serve` runs uvicorn with this class (cli.run_server). It overrides uvicorn's private
`_start_asgi_task` (uvicorn 0.45 and later; pinned in pyproject.toml) and the parser callbacks and asyncio protocol
methods named in `OVERRIDDEN`, and uses the request cycle's `transport` and `on_response` attributes. Importing this
module checks that they all exist (`check_uvicorn`): a uvicorn without them stops the server at start, loudly,
instead of silently never calling the override. The served-instance tests go through it.
"""

from __future__ import annotations

from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from voucher_engine.web.problems import PROBLEM_MEDIA_TYPE, problem_document

_CONTINUE = b"HTTP/1.1 100 "
# A request's line and headers together, and its header lines: nginx's default buffers (4 x 8 KiB) and Apache's
# LimitRequestFields (100). The API's requests carry a dozen headers of a few dozen bytes each.
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
LINGER_S = 2.0
# What this module needs of uvicorn's HttpToolsProtocol, checked when it is imported.
OVERRIDDEN = (
    "_start_asgi_task",
    "data_received",
    "on_headers_complete",
    "on_message_complete",
    "send_400_response",
)
SUPPORTED_UVICORN = ">=0.45,<0.55"


def check_uvicorn() -> None:
    """Raise RuntimeError, saying what is missing, unless the installed uvicorn has what this module overrides."""
    missing = [name for name in OVERRIDDEN if not callable(getattr(HttpToolsProtocol, name, None))]
    cycle_fields = RequestResponseCycle.__init__.__code__.co_varnames
    missing += [f"RequestResponseCycle.{name}" for name in ("transport", "on_response") if name not in cycle_fields]
    if missing:
        raise RuntimeError(
            f"uvicorn {uvicorn.__version__} lacks {', '.join(missing)}, which voucher_engine.api.http overrides; "
            f"install uvicorn{SUPPORTED_UVICORN} (pyproject.toml pins it)"
        )


check_uvicorn()


class _HeadTooLarge(Exception):
    """Stops the parser in the middle of a head that is over a limit (the 431 has been sent already)."""


class _HeadWithBody:
    """One response's view of the connection's transport: the first write (the head) waits for the second."""

    __slots__ = ("_held", "_through", "_transport")

    def __init__(self, transport: Any):
        self._transport = transport
        self._held: bytes | None = None
        self._through = False

    def write(self, data: bytes) -> None:
        if self._through or data.startswith(_CONTINUE):
            self._transport.write(data)
        elif self._held is None:
            self._held = data
        else:
            self._through = True
            self._transport.write(self._held + data)
            self._held = None

    def flush(self) -> None:
        if self._held is not None:
            self._through = True
            self._transport.write(self._held)
            self._held = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWritePerResponse(HttpToolsProtocol):
    # Per connection: the bytes read since the current request began while it was still in its head (an upper bound
    # of the head's size: the read that ends the head may carry body too), whether it is still in its head, and
    # whether the connection has been refused (431 sent, closing). Nothing here runs per header: a till's request
    # pays one comparison in each of three callbacks.
    _head_bytes = 0
    _in_head = True
    _refused = False

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        transport = _HeadWithBody(self.transport)
        completed = cycle.on_response

        def on_response() -> None:
            transport.flush()  # a response without body (HEAD) has held its head until now
            completed()

        cycle.transport = transport
        cycle.on_response = on_response
        super()._start_asgi_task(cycle, app)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # A head still incomplete after this read: the reads so far are all head.
        if not self._refused and self._in_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(f"The request's line and headers are over {MAX_HEAD_BYTES} bytes.")

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_bytes > MAX_HEAD_BYTES or len(self.headers) > MAX_HEADERS:
            detail = self._over_limits()
            if detail is not None:
                self._refuse(detail)
                raise _HeadTooLarge  # stops the parser: the app never sees this request
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _over_limits(self) -> str | None:
        """The exact count, only when the cheap bound says a limit may be passed."""
        if len(self.headers) > MAX_HEADERS:
            return f"The request has more than {MAX_HEADERS} header lines."
        head_bytes = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if head_bytes > MAX_HEAD_BYTES:
            return f"The request's line and headers are over {MAX_HEAD_BYTES} bytes."
        return None

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # after a 431 the parser's own error (our stop) must not answer a second time
            super().send_400_response(msg)

    def _refuse(self, detail: str) -> None:
        self._refused = True
        body = orjson.dumps(problem_document("HEADERS_TOO_LARGE", detail))
        head = (
            f"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: {PROBLEM_MEDIA_TYPE}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        # A lingering close: stop sending, drop whatever else arrives, close a moment later. Closed at once, the
        # rest of the head still arriving would make the kernel reset the connection, and the client could lose
        # the answer before reading it.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
