"""A lean load generator for the till's path: keep-alive HTTP/1.1 over asyncio protocols (uvloop), in several
processes, driving an open loop (requests on a schedule) or a closed loop (each client waits for its answer).

Why not the stream client of `http_client.py`: at a few thousand requests a second its reader/writer objects,
`readuntil` and the task per request cost more CPU than the measured server can spare on a 2-core machine. Here a
connection is an `asyncio.Protocol` whose `data_received` parses the status line and `Content-Length` and calls the
request's callback; a request is pre-built bytes, signed before the step starts (`Source.prepare`), so that during
a step a generator process only writes and reads sockets. Each process reports its own CPU time (getrusage), and
the lag of its sends behind their schedule, so a report can show that the generator was not the bottleneck.

Open loop: request i of a step is due at `start + i / rate`; process j of P sends the requests i ≡ j (mod P) as they
fall due, on whichever of its connections is free (a request that finds none waits in the process's queue).
Latency runs from the due moment to the answer, so a server that falls behind cannot hide its queue (coordinated
omission). Processes agree on `start` through CLOCK_MONOTONIC, which is system-wide on Linux.

The parent (`Generators`) starts the processes once, hands each its own vouchers (disjoint slices), and sends each
step as two commands: prepare (sign, open connections) and go (at an agreed moment).
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import random
import resource
import secrets
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import orjson

ANSWER_GRACE_S = 10.0  # a request still unanswered this long after the step's last send counts as failed
MAX_SAMPLES = 3
# Answers slower than this are kept with their due moment (StepResult.slow), at most MAX_SLOW per process.
SLOW_S = 0.015
MAX_SLOW = 5_000
TICK_S = 0.001
IDLE_REUSE_S = 2.0
STALE_SIGNED_S = 120.0


def request_bytes(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: loadtest", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time; the answer goes to the callback given with the request."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.callback: Any = None
        self.alive = False
        self.last_used = time.monotonic()  # uvicorn closes a keep-alive connection idle for 5 s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(0, b"connection lost")

    def send(self, raw: bytes, callback: Any) -> None:
        self.callback = callback
        self.transport.write(raw)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower() + b"\r\n"
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
        if len(buffer) < end + 4 + length:
            return
        status = int(buffer[9:12])
        body = bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        self.last_used = time.monotonic()
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(status, body)


@dataclass
class Seeds:
    """What one generator process may spend: its own vouchers of the full path and its own baseline ids."""

    key_id: str
    secret: str
    codes: list[str]
    wallets: list[str]
    baseline_ids: range
    # Parts of the mix sent as fresh redemptions instead (where_time_goes.py --mix-without): what each part costs.
    mix_without: frozenset[str] = frozenset()


# The mix's parts by the upper bound of their share of a uniform roll (Source's docstring gives the shares).
MIX_PARTS = ((0.80, "redeem"), (0.86, "q"), (0.91, "retry"), (0.96, "spent"), (1.0, "refund"))


class Source:
    """Requests of one kind, made by one process: `baseline`, `redeem` (fresh signed redemptions) or `mix` (80 %
    redemptions, 6 % quotes, 5 % retries of answered redemptions, 5 % vouchers already spent, 4 % refunds)."""

    def __init__(self, seeds: Seeds, rng: random.Random) -> None:
        from voucher_engine.merchants.client import signed_headers

        self._signed_headers = signed_headers
        self.s = seeds
        self.rng = rng
        self.next_voucher = 0
        self.next_baseline = iter(seeds.baseline_ids)
        self.answered: list[tuple[int, bytes]] = []  # (voucher index, body) of redemptions answered 201
        self.settled_ids: list[str] = []  # to refund
        # Signed ahead, per kind, with when: what a step did not use serves the next one while it is fresh.
        self.ready: dict[str, collections.deque[tuple[bytes, tuple[int, ...], str]]] = {}
        self.signed_at: dict[str, float] = {}
        self.kind = "redeem"

    def _signed(self, path: str, raw: bytes) -> bytes:
        return request_bytes("POST", path, raw, self._signed_headers(self.s.key_id, self.s.secret, "POST", path, raw))

    def _fresh(self) -> tuple[bytes, tuple[int, ...], str]:
        i = self.next_voucher
        if i >= len(self.s.codes):
            raise RuntimeError("a generator ran out of vouchers: seed more (--vouchers)")
        self.next_voucher += 1
        raw = orjson.dumps(
            {
                "voucher_code": self.s.codes[i],
                "wallet_id": self.s.wallets[i],
                "pos_txn_id": f"t{secrets.token_hex(4)}-{i}",
                "order_amount_fen": 12000,
            }
        )
        return self._signed("/v1/redemptions", raw), (201,), f"v{i}"

    def _baseline(self) -> tuple[bytes, tuple[int, ...], str]:
        body = b'{"voucher_id": %d}' % next(self.next_baseline)
        head = b"POST /redeem HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        return head % len(body) + body, (201,), ""

    def prepare(self, kind: str, count: int) -> None:
        """Have `count` requests signed ahead (those that do not depend on earlier answers). Left-overs of an
        earlier step of the same kind are used first unless older than STALE_SIGNED_S (a signature's timestamp
        must stay within the server's ±300 s window)."""
        ready = self.ready.setdefault(kind, collections.deque())
        if time.monotonic() - self.signed_at.get(kind, 0.0) > STALE_SIGNED_S:
            ready.clear()
            self.signed_at[kind] = time.monotonic()
        make = self._baseline if kind == "baseline" else self._fresh if kind == "redeem" else self._mixed_ahead
        for _ in range(count - len(ready)):
            ready.append(make())
        self.kind = kind

    def _mixed_ahead(self) -> tuple[bytes, tuple[int, ...], str]:
        roll = self.rng.random()
        part = next(name for bound, name in MIX_PARTS if roll < bound)
        if part == "redeem" or part in self.s.mix_without:
            return self._fresh()
        if part == "q":
            i = min(len(self.s.codes) - 1, self.next_voucher + self.rng.randrange(1, 1000))
            raw = orjson.dumps(
                {"voucher_code": self.s.codes[i], "wallet_id": self.s.wallets[i], "order_amount_fen": 12000}
            )
            return self._signed("/v1/redemptions/quote", raw), (200,), "q"
        return b"", (), part  # retry, spent or refund: signed when sent, from earlier answers (next)

    def next(self, kind: str) -> tuple[bytes, tuple[int, ...], str]:
        ready = self.ready.get(kind)
        item = ready.popleft() if ready else None
        if item is None:
            item = (
                self._baseline() if kind == "baseline" else self._fresh() if kind == "redeem" else self._mixed_ahead()
            )
        if item[0]:
            return item
        # A request that depends on earlier answers, signed now (a fifth of the mix at most).
        tag = item[2]
        if tag == "retry" and self.answered:
            _, raw = self.rng.choice(self.answered)  # a till sending an answered request again: the original, 200
            return self._signed("/v1/redemptions", raw), (200,), "retry"
        if tag == "spent" and self.answered:
            i, _ = self.rng.choice(self.answered)  # a spent voucher under a new till transaction: refused
            raw = orjson.dumps(
                {
                    "voucher_code": self.s.codes[i],
                    "wallet_id": self.s.wallets[i],
                    "pos_txn_id": f"x{secrets.token_hex(6)}",
                    "order_amount_fen": 12000,
                }
            )
            return self._signed("/v1/redemptions", raw), (409,), "spent"
        if tag == "refund" and self.settled_ids:
            rid = self.settled_ids.pop()
            raw = orjson.dumps({"refund_id": "r" + secrets.token_hex(6), "amount_fen": 3000, "reason": "load test"})
            return self._signed(f"/v1/redemptions/{rid}/refunds", raw), (201,), "refund"
        return self._fresh()

    def answered_with(self, tag: str, status: int, body: bytes, raw: bytes) -> None:
        if status != 201 or not tag.startswith("v"):
            return
        answer = orjson.loads(body)
        if len(self.settled_ids) < 20_000:
            self.settled_ids.append(answer["id"])
        if len(self.answered) < 50_000:
            self.answered.append((int(tag[1:]), raw[raw.index(b"\r\n\r\n") + 4 :]))


@dataclass
class StepResult:
    """What one process (or, merged, all of them) saw in one step."""

    latencies_s: array = field(default_factory=lambda: array("d"))
    lags_s: array = field(default_factory=lambda: array("d"))  # open loop: send moment minus due moment
    statuses: dict[int, int] = field(default_factory=dict)
    failed: int = 0
    samples: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    sent: int = 0
    # The slowest answers' due moments (time.monotonic, the same clock in every process) and latencies, at most
    # MAX_SLOW per process: whether slow answers come together (the server stalled) or alone (a slow request).
    slow: list[tuple[float, float]] = field(default_factory=list)
    # The mix's latencies by request: redeem, q (quote), retry, spent, refund.
    mix_latencies_s: dict[str, array] = field(default_factory=dict)

    def merge(self, other: "StepResult") -> None:
        self.latencies_s.extend(other.latencies_s)
        for part, values in other.mix_latencies_s.items():
            self.mix_latencies_s.setdefault(part, array("d")).extend(values)
        self.slow.extend(other.slow)
        self.lags_s.extend(other.lags_s)
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.failed += other.failed
        self.samples = (self.samples + other.samples)[:MAX_SAMPLES]
        self.cpu_s += other.cpu_s
        self.wall_s = max(self.wall_s, other.wall_s)
        self.sent += other.sent

    def answered(self) -> int:
        return len(self.latencies_s)

    def percentile_ms(self, p: float, values: array | None = None) -> float:
        ordered = sorted(self.latencies_s if values is None else values)
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


class _Worker:
    """The state of one generator process: its sources' progress and its open connections, per port."""

    def __init__(self, seeds: Seeds, index: int) -> None:
        self.source = Source(seeds, random.Random(1000 + index))
        self.conns: dict[int, list[Conn]] = {}

    async def connections(self, port: int, count: int) -> list[Conn]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.01)  # the loop was idle between commands: let it see the closes that came meanwhile
        # A connection idle for a while may be closed by the server (uvicorn: after 5 s) just as the step begins:
        # such ones are replaced, as a till would reconnect after a quiet spell.
        fresh_after = time.monotonic() - IDLE_REUSE_S
        alive = [
            c
            for c in self.conns.get(port, [])
            if c.alive
            and c.callback is None
            and c.last_used > fresh_after
            and c.transport is not None
            and not c.transport.is_closing()
        ]
        for c in self.conns.get(port, []):
            if c not in alive and c.transport is not None:
                c.transport.close()
        while len(alive) < count:
            made = await asyncio.gather(
                *(loop.create_connection(Conn, "127.0.0.1", port) for _ in range(min(64, count - len(alive))))
            )
            alive.extend(protocol for _, protocol in made)
        self.conns[port] = alive
        return alive[:count]

    def _record(self, result: StepResult, kind: str, item, status: int, body: bytes, due: float, now: float) -> None:
        raw, expected, tag = item
        latency_s = now - due
        result.latencies_s.append(latency_s)
        if latency_s > SLOW_S and len(result.slow) < MAX_SLOW:
            result.slow.append((due, latency_s))
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status not in expected:
            result.failed += 1
            if len(result.samples) < MAX_SAMPLES:
                result.samples.append(f"{tag or kind}: {status} {body[:200].decode(errors='replace')}")
        elif kind == "mix":
            self.source.answered_with(tag, status, body, raw)
        if kind == "mix":  # which requests of the mix are its slow ones
            part = "redeem" if tag.startswith("v") else tag
            result.mix_latencies_s.setdefault(part, array("d")).append(latency_s)

    async def open_loop(
        self, port: int, kind: str, rate: float, duration_s: float, start: float, me: int, of: int, conns: list[Conn]
    ) -> StepResult:
        result = StepResult()
        total = int(rate * duration_s)
        mine = range(me, total, of)
        idle = collections.deque(conns)  # first in, first out: every connection stays in use, none idles out
        backlog: collections.deque[float] = collections.deque()
        outstanding = 0
        finished = asyncio.get_running_loop().create_future()
        source = self.source
        clock = time.monotonic
        loop = asyncio.get_running_loop()
        replacing: list[asyncio.Task[None]] = []

        def replace() -> None:
            # The server closed an idle keep-alive connection (uvicorn does after 5 s): a till would reconnect.
            async def reconnect() -> None:
                _, conn = await loop.create_connection(Conn, "127.0.0.1", port)
                conns.append(conn)
                if backlog:
                    dispatch(conn, backlog.popleft())
                else:
                    idle.append(conn)

            replacing.append(loop.create_task(reconnect()))

        def take() -> Conn | None:
            while idle:
                conn = idle.popleft()
                if conn.alive and not conn.transport.is_closing():  # type: ignore[union-attr]
                    if conn.last_used > clock() - IDLE_REUSE_S:
                        return conn
                    conn.transport.close()  # type: ignore[union-attr]  # about to be closed by the server
                replace()
            return None

        def dispatch(conn: Conn, due: float) -> None:
            nonlocal outstanding
            item = source.next(kind)
            outstanding += 1
            result.sent += 1
            result.lags_s.append(clock() - due)

            def answered(status: int, body: bytes) -> None:
                nonlocal outstanding
                outstanding -= 1
                self._record(result, kind, item, status, body, due, clock())
                if backlog and conn.alive:
                    dispatch(conn, backlog.popleft())
                elif conn.alive:
                    idle.append(conn)
                if outstanding == 0 and done_sending and not finished.done():
                    finished.set_result(None)

            conn.send(item[0], answered)

        done_sending = False
        cpu0 = _cpu()
        k, n = 0, len(mine)
        while k < n:
            now = clock()
            while k < n:
                due = start + mine[k] / rate
                if due > now:
                    break
                k += 1
                conn = take()
                if conn is not None:
                    dispatch(conn, due)
                else:
                    backlog.append(due)
            if k < n:
                # Never less than a millisecond: uvloop's timers count whole milliseconds, and a shorter sleep
                # returns at once (a busy loop that burnt most of the generator's CPU). Latency still runs from
                # each request's due moment, so this tick's delay is counted against the measured side.
                await asyncio.sleep(max(TICK_S, start + mine[k] / rate - clock()))
        done_sending = True
        if outstanding or backlog:
            try:
                await asyncio.wait_for(asyncio.shield(finished), ANSWER_GRACE_S)
            except asyncio.TimeoutError:
                pass
        unanswered = outstanding + len(backlog)
        result.failed += unanswered
        if unanswered and len(result.samples) < MAX_SAMPLES:
            result.samples.append(f"{unanswered} requests unanswered {ANSWER_GRACE_S:.0f} s after the step")
        for conn in conns:
            if conn.callback is not None and conn.transport is not None:  # abandoned: never reuse
                conn.callback = None
                conn.transport.close()
        result.wall_s = clock() - start
        result.cpu_s = _cpu() - cpu0
        return result

    async def closed_loop(self, port: int, kind: str, duration_s: float, start: float, conns: list[Conn]) -> StepResult:
        result = StepResult()
        stop_at = start + duration_s
        running = len(conns)
        finished = asyncio.get_running_loop().create_future()
        source = self.source
        clock = time.monotonic

        def go(conn: Conn) -> None:
            nonlocal running
            if clock() >= stop_at or not conn.alive:
                running -= 1
                if running == 0 and not finished.done():
                    finished.set_result(None)
                return
            item = source.next(kind)
            sent = clock()
            result.sent += 1

            def answered(status: int, body: bytes) -> None:
                self._record(result, kind, item, status, body, sent, clock())
                go(conn)

            conn.send(item[0], answered)

        await asyncio.sleep(max(0.0, start - clock()))
        cpu0 = _cpu()
        for conn in conns:
            go(conn)
        try:
            await asyncio.wait_for(asyncio.shield(finished), duration_s + ANSWER_GRACE_S)
        except asyncio.TimeoutError:
            result.failed += running
        result.wall_s = clock() - start
        result.cpu_s = _cpu() - cpu0
        return result


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_main(pipe, seeds: Seeds, index: int) -> None:
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = _Worker(seeds, index)
    conns: list[Conn] = []
    while True:
        command = pipe.recv()
        if command[0] == "stop":
            break
        try:
            if command[0] == "prepare":
                _, port, kind, count, connections = command
                worker.source.prepare(kind, count)
                conns = loop.run_until_complete(worker.connections(port, connections))
                pipe.send(("ready", None))
            elif command[0] == "open":
                _, port, kind, rate, duration_s, start, of = command
                pipe.send(
                    (
                        "done",
                        loop.run_until_complete(
                            worker.open_loop(port, kind, rate, duration_s, start, index, of, conns)
                        ),
                    )
                )
            elif command[0] == "closed":
                _, port, kind, duration_s, start = command
                pipe.send(("done", loop.run_until_complete(worker.closed_loop(port, kind, duration_s, start, conns))))
        except Exception as exc:  # noqa: BLE001 - the parent reports it
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    for conns_of_port in worker.conns.values():
        for conn in conns_of_port:
            if conn.transport is not None:
                conn.transport.close()
    loop.close()


class Generators:
    """P generator processes, each with its own slice of the seeded vouchers and baseline ids."""

    def __init__(
        self,
        processes: int,
        key_id: str,
        secret: str,
        codes: list[str],
        wallets: list[str],
        baseline_count: int,
        *,
        mix_without: frozenset[str] = frozenset(),
    ):
        context = multiprocessing.get_context("spawn")
        self.count = processes
        self.pipes = []
        self.procs = []
        per = len(codes) // processes
        for j in range(processes):
            seeds = Seeds(
                key_id,
                secret,
                codes[j * per : (j + 1) * per],
                wallets[j * per : (j + 1) * per],
                range(j, baseline_count, processes),
                mix_without,
            )
            mine, theirs = context.Pipe()
            proc = context.Process(target=_process_main, args=(theirs, seeds, j), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _all(self, command: tuple | list[tuple]) -> list[Any]:
        commands = command if isinstance(command, list) else [command] * self.count
        for pipe, each in zip(self.pipes, commands):
            pipe.send(each)
        answers = [pipe.recv() for pipe in self.pipes]
        errors = [a[1] for a in answers if a[0] == "error"]
        if errors:
            raise RuntimeError(f"generator failed: {errors[0]}")
        return [a[1] for a in answers]

    def _prepare(self, port: int, kind: str, expected_requests: int, connections: int) -> None:
        """Each process signs its share of the step's requests ahead and opens its share of the connections."""
        per = expected_requests // self.count + 1
        shares = [connections * (j + 1) // self.count - connections * j // self.count for j in range(self.count)]
        self._all([("prepare", port, kind, per, max(1, share)) for share in shares])

    def open_loop(self, port: int, kind: str, rate: float, duration_s: float, connections: int) -> StepResult:
        self._prepare(port, kind, int(rate * duration_s), connections)
        start = time.monotonic() + 0.05
        merged = StepResult()
        for part in self._all(("open", port, kind, rate, duration_s, start, self.count)):
            merged.merge(part)
        return merged

    def closed_loop(self, port: int, kind: str, clients: int, duration_s: float, expected_rate: float) -> StepResult:
        self._prepare(port, kind, int(expected_rate * duration_s), clients)
        start = time.monotonic() + 0.05
        merged = StepResult()
        for part in self._all(("closed", port, kind, duration_s, start)):
            merged.merge(part)
        return merged

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("stop",))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
