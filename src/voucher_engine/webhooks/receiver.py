"""A reference receiver: a small HTTP server that checks each delivery's signature and deduplicates by event id.

For integrators (what a receiver must do, in a few lines: `Receiver.accept`) and for this project's tests and load
test, which run it on a local port. `statuses` scripts the answers (e.g. [500, 500, 500] then 200s) to exercise
retries. It speaks just enough HTTP/1.1 (Content-Length bodies, keep-alive) for the dispatcher's client.

    python -m voucher_engine.webhooks.receiver --port 9100 --secret whsec_...   # prints one line per event
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from voucher_engine.webhooks.signing import verify

MAX_BODY_BYTES = 1 << 20
MAX_TIMESTAMP_SKEW_S = 300


@dataclass
class Received:
    event_id: str
    type: str
    body: dict[str, Any]
    signature_ok: bool
    at: float
    headers: dict[str, str]


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)  # any one of them may have signed (several subscriptions)
    statuses: list[int] = field(default_factory=list)  # answers to give first, in order; 200 after them
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)  # every request, duplicates included
    unique: dict[str, Received] = field(default_factory=dict)  # first arrival of each event id
    record_all: bool = True
    bad_signatures: int = 0
    duplicates: int = 0
    lags_s: list[float] = field(default_factory=list)  # arrival - settled_at of each first redemption.settled
    _server: asyncio.Server | None = None
    port: int = 0

    def accept(self, headers: dict[str, str], body: bytes) -> int:
        """The receiver's whole duty: verify, deduplicate, answer 2xx quickly."""
        timestamp = headers.get("x-ve-timestamp", "")
        signature = headers.get("x-ve-signature", "")
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= MAX_TIMESTAMP_SKEW_S
        ok = fresh and any(verify(secret, timestamp, body, signature) for secret in self.secrets)
        if not ok:
            self.bad_signatures += 1
        event = orjson.loads(body)
        item = Received(event["id"], event["type"], event, ok, time.time(), headers)
        if self.record_all:
            self.received.append(item)
        if event["id"] in self.unique:
            self.duplicates += 1
        else:
            self.unique[event["id"]] = item if self.record_all else None  # type: ignore[assignment]
            settled_at = event["data"].get("settled_at") if event["type"] == "redemption.settled" else None
            if settled_at:
                self.lags_s.append(item.at - datetime.fromisoformat(settled_at).timestamp())
        if self.statuses:
            return self.statuses.pop(0)
        return 200 if ok else 401

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await asyncio.start_server(self._connection, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://{host}:{self.port}/hook"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.unique.values() if r is not None and r.type == type_]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length > MAX_BODY_BYTES:
                    break
                body = await reader.readexactly(length)
                if method == "GET" and path == "/stats":
                    status, answer = 200, orjson.dumps(self.stats())
                elif method == "POST" and path == "/secrets":  # a test harness adds a subscription's secret
                    self.secrets.append(body.decode())
                    status, answer = 204, b""
                else:
                    if self.delay_s:
                        await asyncio.sleep(self.delay_s)
                    status, answer = self.accept(headers, body), b"{}"
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def stats(self) -> dict[str, Any]:
        lags = sorted(self.lags_s)

        def pick(q: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None

        return {
            "requests": len(self.received) if self.record_all else None,
            "unique": len(self.unique),
            "duplicates": self.duplicates,
            "bad_signatures": self.bad_signatures,
            "settled_lag_s": {"p50": pick(0.5), "p99": pick(0.99), "max": lags[-1] if lags else None},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--quiet", action="store_true", help="no line per event (GET /stats still counts)")
    args = parser.parse_args()

    async def serve() -> None:
        receiver = Receiver(secrets=args.secret, record_all=False)
        if not args.quiet:
            original = receiver.accept

            def accept(headers: dict[str, str], body: bytes) -> int:
                status = original(headers, body)
                print(status, body.decode(), flush=True)
                return status

            receiver.accept = accept  # type: ignore[method-assign]
        await receiver.start(args.host, args.port)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
