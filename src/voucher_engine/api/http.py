"""uvicorn's httptools protocol, writing each response in one piece.

uvicorn writes a response's status line and headers when the app sends `http.response.start`, and its body when the
app sends `http.response.body`: two system calls, two TCP segments and, for a till waiting on the answer, two
wake-ups, for an answer of a few hundred bytes. Here the head waits for the first piece of the body and leaves with
it. Nothing else changes: a `100 Continue` still goes out at once, a response without a body (HEAD) is sent when it
completes, and a closing connection sends what it holds first.

`voucher-engine serve` runs uvicorn with this class (cli.run_server). It relies on uvicorn's `_start_asgi_task` and on
the request cycle's `transport` and `on_response` attributes; the served-instance tests go through it.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_CONTINUE = b"HTTP/1.1 100 "


class _HeadWithBody:
    """One response's view of the connection's transport: the first write (the head) waits for the second."""

    __slots__ = ("_transport", "_held", "_through")

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
    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        transport = _HeadWithBody(self.transport)
        completed = cycle.on_response

        def on_response() -> None:
            transport.flush()  # a response without body (HEAD) has held its head until now
            completed()

        cycle.transport = transport
        cycle.on_response = on_response
        super()._start_asgi_task(cycle, app)
