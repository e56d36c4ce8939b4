"""A minimal keep-alive HTTP/1.1 client over asyncio streams, so that the load generator is not the bottleneck.

Requests are pre-serialized bytes; a response is read as status line, headers, and a Content-Length body (what
uvicorn sends for JSON). No chunked encoding, no redirects, no TLS: a measuring tool, not a general client.
"""

from __future__ import annotations

import asyncio

MAX_RESPONSE_BYTES = 1 << 20


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length > MAX_RESPONSE_BYTES:
            raise ValueError("response too large")
        body = await self.reader.readexactly(length) if length else b""
        return status, body


def request_bytes(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: loadtest", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
