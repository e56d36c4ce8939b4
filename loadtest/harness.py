"""What the load tests share: a free port, a uvicorn (or service) process started and stopped, CPU of a process
tree, and a closed-loop driver of keep-alive clients.

Closed loop: each of C clients sends a request, waits for its answer, and sends the next, for S seconds, so the
rate measured is what the server sustains at that concurrency. Requests are pre-built bytes made by a picklable
`request_for(slot, n)` (slot: the client's global number, 0..C-1; n: its request count), so the same driver runs in
one process or spread over several load-generator processes (`generators`), and every request can name its own
voucher or wallet without two clients ever sharing one.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# A request not answered in this long ends its client's loop (counted under status 0): a stuck server must not
# hang the benchmark.
REQUEST_TIMEOUT_S = 30.0
MAX_RESPONSE_BYTES = 1 << 20


# How much WAL `warm_wal` writes before its checkpoint: more than a measured phase writes between two checkpoints
# (~5-8 MB/s of redemptions, with checkpoints every few hundred MB), so the phases find recycled segments ready.
WARM_WAL_MB = 768


def warm_wal(database_url: str, megabytes: int = WARM_WAL_MB) -> None:
    """Give PostgreSQL the WAL segments a long-running server has: write `megabytes` of WAL into a scratch table,
    drop it and checkpoint, so the segments written are recycled as the next ones.

    Why: a fresh cluster (the embedded server in a temporary directory, or a new stock server) has no segments to
    recycle. Each 16 MB segment is then created when the WAL reaches it, and `wal_init_zero` (on by default) writes
    it full of zeros and fsyncs it while every commit waits: at 1,000 redemptions/s a stall of 50-100 ms every
    3-4 s, which no production server that has run through a checkpoint sees, and which was most of the full path's
    p99 in these benchmarks. CHECKPOINT needs a superuser (or pg_checkpoint); without one the run goes on unwarmed,
    and says so."""
    import asyncpg

    from voucher_engine.db.engine import plain_url

    async def run() -> None:
        connection = await asyncpg.connect(plain_url(database_url))
        try:
            await connection.execute("DROP TABLE IF EXISTS loadtest_wal_warm")
            await connection.execute("CREATE TABLE loadtest_wal_warm (filler text)")
            rows = megabytes * 1024 * 1024 // 1100  # each row with its WAL record's overhead: ~1.1 kB
            await connection.execute(
                "INSERT INTO loadtest_wal_warm SELECT repeat(md5(g::text), 32) FROM generate_series(1, $1) AS g", rows
            )
            await connection.execute("DROP TABLE loadtest_wal_warm")
            await connection.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            print("warning: no privilege to CHECKPOINT; WAL segments not warmed (expect stalls as they are made)")
        finally:
            await connection.close()

    began = time.monotonic()
    asyncio.run(run())
    print(f"warmed {megabytes} MB of WAL segments in {time.monotonic() - began:.0f} s", flush=True)


async def _fetch(url: str, query: str, *args):
    import asyncpg

    from voucher_engine.db.engine import plain_url

    conn = await asyncpg.connect(plain_url(url))
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def scratch_dir(prefix: str) -> Path:
    """A temporary folder for a run's embedded PostgreSQL and logs, removed when the run's process exits. The removal
    is registered before the embedded server is started, so it runs after the server's own stop (atexit runs the
    last registered first): a run used to leave a gigabyte of data and warmed WAL behind it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


def machine_speed_s(additions: int = 10_000_000) -> float:
    """Seconds this machine takes for a Python loop of `additions` additions, a yardstick these benchmarks print at
    their start and end: the same shared machine has measured twice as slow from one hour to the next, and figures
    taken at different speeds do not compare. It measures one core's arithmetic only, not the disk, the caches or
    what the neighbours do to them: a fast yardstick does not prove a fast machine. On 2026-12-03,
    `where_time_goes.py --rate 1000 --seconds 12 --workers 1` took 421 µs of the service's CPU per request and p50
    4.1 ms with the loop at 0.56 s (11:54 UTC), and 730 µs and 9.6 ms with the loop at 0.31 s (13:37 UTC)."""
    began = time.perf_counter()
    total = 0
    for i in range(additions):
        total += i
    return time.perf_counter() - began


# The yardstick's closed loop: enough clients to keep one uvicorn worker busy, for long enough to average a tick.
FLOOR_CLIENTS = 16
FLOOR_SECONDS = 3.0
_FLOOR_BODY = b'{"voucher_code":"' + b"x" * 40 + b'","wallet_id":"7000000000000001","order_amount_fen":12000}'
_FLOOR_REQUEST = (
    b"POST /v1/redemptions HTTP/1.1\r\nhost: yardstick\r\ncontent-type: application/json\r\n"
    b"x-ve-key-id: k\r\nx-ve-timestamp: 0\r\nx-ve-nonce: n\r\nx-ve-signature: s\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_FLOOR_BODY), _FLOOR_BODY)
)


def _floor_request(slot: int, n: int) -> bytes:
    return _FLOOR_REQUEST


def http_floor_us(seconds: float = FLOOR_SECONDS) -> tuple[float, float]:
    """(µs of server CPU per request, requests/s) of `loadtest/yardstick_app.py` under uvicorn, one worker, as the
    service is run (uvloop, httptools), driven closed loop by FLOOR_CLIENTS clients: what a request costs the server
    before the service does anything with it. A second yardstick beside `machine_speed_s`, which the machine's slow
    hours did not show: on 2026-12-03 the additions loop read 0.31-0.34 s while the service spent 577-633 µs of CPU
    per request at 1,000/s, against 0.56 s and 421 µs the day before; this one moved from 45 to 67 µs between two
    rounds a minute apart. The service's CPU per request divided by it compares across hours better than either."""
    import sys

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent))
    command = uvicorn_command("yardstick_app:app", port, 1)
    with server(command, env, port, cwd=str(Path(__file__).resolve().parent), ready_path="/") as process:
        closed_loop(port, _floor_request, FLOOR_CLIENTS, 0.5)  # connections open, caches warm
        before = tree_cpu_s(process.pid)
        result = closed_loop(port, _floor_request, FLOOR_CLIENTS, seconds)
        used = tree_cpu_s(process.pid) - before
    answered = result.count(201)
    if answered == 0:
        sys.exit(f"the yardstick's server answered nothing: {result.statuses}")
    return used * 1e6 / answered, answered / result.seconds


def machine_state() -> str:
    """Both yardsticks, as one line for a run's report."""
    floor_us, floor_rate = http_floor_us()
    return (
        f"a Python loop of 10 million additions {machine_speed_s():.2f} s; a bare uvicorn answer {floor_us:.0f} µs of"
        f" server CPU ({floor_rate:,.0f}/s at {FLOOR_CLIENTS} clients)"
    )


# The disk watch: one 8 kB write and fdatasync (what a commit's WAL flush is) every DISK_WATCH_EVERY_S, and a sync
# slower than DISK_STALL_S counted as a stall of the disk.
DISK_WATCH_EVERY_S = 0.005
DISK_STALL_S = 0.010
DISK_WATCH_BLOCKS = 512  # the file's size in 8 kB blocks, written round


class _Watch:
    """A thread beside a load, for as long as a `with` block: `_run` loops until `_stop` is set, and whatever it
    gathered is read after the block (the thread has been joined by then)."""

    thread_name = "watch"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class DiskWatch(_Watch):
    """A thread that times the disk's flushes beside a load (`with DiskWatch(folder) as watch: ...`), so that a till's
    burst of slow answers can be told from a stall of the disk that every commit waits for: on 2026-12-03, at
    1,000/s, the disk stalled once (36 ms) in a run whose tills saw 64 bursts. The file lives in `folder` (the
    run's scratch folder, on the embedded PostgreSQL's disk) and is removed after."""

    thread_name = "disk-watch"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.path = folder / "disk-watch.dat"
        self.latencies_s: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (time.monotonic at the sync's start, its seconds)

    def _run(self) -> None:
        block = os.urandom(8192)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            n = 0
            while not self._stop.wait(DISK_WATCH_EVERY_S):
                started = time.monotonic()
                os.pwrite(fd, block, (n % DISK_WATCH_BLOCKS) * 8192)
                os.fdatasync(fd)
                took = time.monotonic() - started
                self.latencies_s.append(took)
                if took > DISK_STALL_S:
                    self.stalls.append((started, took))
                n += 1
        finally:
            os.close(fd)
            self.path.unlink(missing_ok=True)

    def report(self, began: float, bursts: list[list[tuple[float, float]]]) -> str:
        """One line: the flushes' p50, p99 and worst, the stalls (from `began`), and how many of the tills'
        `bursts` (capacity.burst_groups) overlap one."""
        if not self.latencies_s:
            return "disk: no flush timed"
        ordered = sorted(self.latencies_s)

        def ms(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        stalls = [(start, start + took) for start, took in self.stalls]
        shown = ", ".join(f"{start - began:.1f} s ({took * 1000:.0f} ms)" for start, took in self.stalls[:8])
        return (
            f"disk: {len(ordered):,} flushes of 8 kB, fdatasync p50 {ms(0.5):.2f} ms, p99 {ms(0.99):.2f} ms, worst"
            f" {ordered[-1] * 1000:.1f} ms; {len(self.stalls)} over {DISK_STALL_S * 1000:.0f} ms"
            f"{f' at {shown}' if shown else ''}; {overlapping(bursts, stalls)} of the {len(bursts)} bursts of slow"
            f" answers overlap one ({by_chance(bursts, stalls):.1f} would by chance)"
        )


def overlapping(bursts: list[list[tuple[float, float]]], intervals: list[tuple[float, float]]) -> int:
    """How many bursts of slow answers (each a list of (due, latency)) overlap one of the (start, end) intervals."""

    def overlaps(group: list[tuple[float, float]]) -> bool:
        first, last = group[0][0], max(due + latency for due, latency in group)
        return any(start < last and end > first for start, end in intervals)

    return sum(map(overlaps, bursts))


CHANCE_SHIFTS = 20  # shifted copies of the bursts that `by_chance` averages over


def by_chance(bursts: list[list[tuple[float, float]]], intervals: list[tuple[float, float]]) -> float:
    """How many of the bursts would overlap an interval by chance: the mean of `overlapping` over the bursts moved
    in time together by CHANCE_SHIFTS offsets, wrapped around the span the intervals cover. Frequent short
    intervals overlap many bursts by chance alone; the count that matters is the measured one above this."""
    if not bursts or not intervals:
        return 0.0
    low, high = min(start for start, _ in intervals), max(end for _, end in intervals)
    span = max(high - low, 1e-9)
    total = 0
    for k in range(1, CHANCE_SHIFTS + 1):
        shift = span * k / (CHANCE_SHIFTS + 1)
        moved = [[(low + (due + shift - low) % span, latency) for due, latency in group] for group in bursts]
        total += overlapping(moved, intervals)
    return total / CHANCE_SHIFTS


# The run-queue watch: each process's time waiting for a CPU (Linux's /proc/PID/schedstat) read every
# RUNQUEUE_EVERY_S; an interval in which a process waited more than RUNQUEUE_STARVED_S counts as starved.
RUNQUEUE_EVERY_S = 0.005
RUNQUEUE_STARVED_S = 0.002


def _run_delay_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class RunQueueWatch(_Watch):
    """A thread that reads how long each watched process (the service's worker, the batches' PostgreSQL backends)
    waited for a CPU, beside a load (`with RunQueueWatch({pid: role}) as watch: ...`): a till's answer waits
    whenever the worker or its backend is runnable but not running, and on two shared cores that is the suspect
    for the bursts that neither the SQL nor the disk explains."""

    thread_name = "run-queue-watch"

    def __init__(self, roles: dict[int, str]) -> None:
        super().__init__()
        self.roles = roles
        self.waited_s = dict.fromkeys(roles, 0.0)
        self.starved: list[tuple[float, float, int]] = []  # (start, end, pid), time.monotonic
        self.watched_s = 0.0

    def _run(self) -> None:
        last = {pid: _run_delay_s(pid) for pid in self.roles}
        last_at = began = time.monotonic()
        while not self._stop.wait(RUNQUEUE_EVERY_S):
            now = time.monotonic()
            for pid in self.roles:
                delay = _run_delay_s(pid)
                if delay is None or last[pid] is None:
                    last[pid] = delay
                    continue
                waited = delay - last[pid]
                self.waited_s[pid] += waited
                if waited > RUNQUEUE_STARVED_S:
                    self.starved.append((last_at, now, pid))
                last[pid] = delay
            last_at = now
        self.watched_s = time.monotonic() - began

    def report(self, bursts: list[list[tuple[float, float]]]) -> str:
        """Lines: each role's wait for a CPU (ms per second watched, starved intervals), and how many of the tills'
        `bursts` overlap an interval in which one of the watched processes was starved."""
        seconds = max(self.watched_s, 1e-9)
        by_role: dict[str, tuple[float, int]] = {}
        for pid, role in self.roles.items():
            waited, count = by_role.get(role, (0.0, 0))
            by_role[role] = (waited + self.waited_s[pid], count + sum(1 for *_, p in self.starved if p == pid))
        lines = [
            f"run queue: {role} waited for a CPU {waited * 1000 / seconds:.0f} ms a second; starved (over"
            f" {RUNQUEUE_STARVED_S * 1000:.0f} ms of a {RUNQUEUE_EVERY_S * 1000:.0f} ms look) {count} times"
            for role, (waited, count) in by_role.items()
        ]
        starved = [(start, end) for start, end, _ in self.starved]
        lines.append(
            f"run queue: {overlapping(bursts, starved)} of the {len(bursts)} bursts of slow answers overlap a starved"
            f" look ({by_chance(bursts, starved):.1f} would by chance)"
        )
        return "\n  ".join(lines)


def fetch(url: str, query: str, *args):
    """Run one statement on a connection of its own and answer its rows (CREATE DATABASE included)."""
    return asyncio.run(_fetch(url, query, *args))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat() -> dict[int, tuple[int, float, float]]:
    """pid -> (parent pid, its own CPU seconds, CPU seconds of its children it has reaped), user + system, from
    Linux's /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        table[int(entry)] = (int(fields[1]), own / tick, reaped / tick)
    return table


def descendants(table: dict[int, tuple[int, float, float]], root: int) -> list[int]:
    """`root` and every process below it in `table` (proc_stat's)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def tree_cpu_s(root_pid: int | None) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants (Linux /proc)."""
    if root_pid is None:
        return 0.0
    table = proc_stat()
    # Own time plus that of reaped children (a backend that exited is counted in its postmaster).
    return sum(table[pid][1] + table[pid][2] for pid in descendants(table, root_pid) if pid in table)


def _log_tail(process: subprocess.Popen) -> str:
    log = process.stderr if process.stderr is not None else getattr(process, "log", None)
    if log is None:
        return ""
    if hasattr(log, "seek"):
        log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


def wait_ready(port: int, process: subprocess.Popen, path: str = "/readyz", timeout_s: float = 90.0) -> None:
    """Until GET `path` answers 200 (or the process exits, or `timeout_s` passes)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {_log_tail(process)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server did not answer GET {path} with 200 within {timeout_s:.0f} s")


def stop(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def server(
    command: list[str], env: dict[str, str], port: int, *, cwd: str | None = None, ready_path: str = "/readyz"
) -> Iterator[subprocess.Popen]:
    """A server process (uvicorn or `voucher-engine serve`) listening on `port`, ready, stopped on exit."""
    # Its log to a file: a pipe nobody reads would stop the server once its request lines (one each) filled it.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
    process.log = log  # type: ignore[attr-defined]
    try:
        wait_ready(port, process, ready_path)
        yield process
    finally:
        stop(process)


def uvicorn_command(app: str, port: int, workers: int, *, factory: bool = False) -> list[str]:
    """uvicorn as the service runs it (uvloop, httptools, no access log)."""
    import sys

    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        *(["--factory"] if factory else []),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


class Client:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for JSON answers with Content-Length."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length > MAX_RESPONSE_BYTES:
            raise ValueError("response too large")
        if length:
            await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class LoopResult:
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def merge(self, other: "LoopResult") -> None:
        self.latencies_s.extend(other.latencies_s)
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.seconds = max(self.seconds, other.seconds)

    def count(self, *statuses: int) -> int:
        return sum(self.statuses.get(s, 0) for s in statuses)

    def percentile_ms(self, p: float) -> float:
        ordered = sorted(self.latencies_s)
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1) if ordered else 0.0


async def drive(port: int, request_for: Callable[[int, int], bytes], slots: range, seconds: float) -> LoopResult:
    """Closed loop: one keep-alive client per slot, each sending `request_for(slot, n)` after the last answer."""
    result = LoopResult()
    started = time.perf_counter()
    stop_at = started + seconds

    async def one(slot: int) -> None:
        client = Client(port)
        n = 0
        try:
            while time.perf_counter() < stop_at:
                raw = request_for(slot, n)
                n += 1
                sent = time.perf_counter()
                try:
                    status = await asyncio.wait_for(client.request(raw), REQUEST_TIMEOUT_S)
                except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    result.statuses[0] = result.statuses.get(0, 0) + 1
                    return
                result.latencies_s.append(time.perf_counter() - sent)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            client.close()

    await asyncio.gather(*(one(slot) for slot in slots))
    result.seconds = time.perf_counter() - started
    return result


def _drive_process(args: tuple) -> LoopResult:
    port, request_for, slots, seconds = args
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(drive(port, request_for, slots, seconds))


def closed_loop(
    port: int, request_for: Callable[[int, int], bytes], clients: int, seconds: float, generators: int = 1
) -> LoopResult:
    """`clients` closed-loop clients for `seconds`, spread over `generators` load-generator processes."""
    from concurrent.futures import ProcessPoolExecutor

    generators = max(1, min(generators, clients))
    bounds = [clients * g // generators for g in range(generators + 1)]
    jobs = [(port, request_for, range(bounds[g], bounds[g + 1]), seconds) for g in range(generators)]
    total = LoopResult()
    with ProcessPoolExecutor(generators) as pool:
        for part in pool.map(_drive_process, jobs):
            total.merge(part)
    return total
