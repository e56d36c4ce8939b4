"""Capacity at a latency target: the highest offered rate a side sustains with p99 ≤ 25 ms and nothing failing.

    python loadtest/capacity.py [--step-s 4] [--start-rate 400] [--factor 1.15] [--max-rate 6000]
                                [--baseline 2x16,1x16] [--full 2x10,1x10] [--closed 16,32,64,128] [--at 1000]
                                [--repeat 3]

A till does not care how much a server does for 128 clients that wait their turn; it cares how long its own payment
takes while the city is busy. So the headline figure is measured open loop: requests leave on a schedule at an
offered rate whatever the answers do, and each request's latency runs from its scheduled moment, so a queue in the
server (or in the generator) is counted, never hidden (loadtest/lean_client.py).

The run starts PostgreSQL (embedded, or DATABASE_URL), seeds a campaign (loadtest/redemption_load.py's seed) and
the bare baseline's table (loadtest/baseline.py), then, for each group of configurations (the i-th of --baseline
with the i-th of --full: workers x pool size), starts both servers and steps the offered rate up a geometric ladder,
the sides alternating at each rung: the baseline, the full path with redemptions only, and the realistic mix
(80 % redemptions, quotes, retries, vouchers already spent, refunds). A rung passes when p99 ≤ --target-ms and no
request failed (an unexpected status, a dropped connection, or no answer). A side leaves the ladder after two
failing rungs in a row; one rung between its last pass and its first failure is then tried (the geometric middle).
Its capacity is the highest rate that passed. Each side's best configuration is taken, and with those:

- the closed loop at --closed clients, the sides alternating at each count (throughput, p50, p99);
- the full path's redemptions offered at --at per second (and the baseline's, alternating), for the 15 ms target.

With --repeat N, all of that runs N times on the same servers and seed, and each figure the issue's targets are
stated in (the capacity ratios, the closed loop's ratio at each count, the full path's p99 at --at) is printed with
its median, lowest and highest over the runs: on a machine whose speed drifts, one run's ratio can be far from the
next one's (docs/redemption.md, "2026-12-04").

For every rung it prints the CPU per request of the service's process tree, of PostgreSQL's (the postmaster's
tree: a backend that exits is counted in its parent) and of the generator's processes, read from /proc, and the
load average; at each side's capacity, those are its CPU per redemption at the knee.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from loadtest.harness import free_port, machine_state, scratch_dir, tree_cpu_s, wait_ready, warm_wal  # noqa: E402
from loadtest.lean_client import Generators, StepResult  # noqa: E402

SIDES = (("baseline", "baseline"), ("full: redemptions only", "redeem"), ("full: realistic mix", "mix"))
WARM_UP_S = 2.0
MAX_REPEAT = 10  # a run takes minutes, and the vouchers for all of them are seeded first


@dataclass(frozen=True)
class Config:
    """A server's shape: worker processes and database pool size (per worker)."""

    workers: int
    pool: int
    risk: str = "on"  # the full service's VE_RISK (loadtest/risk_cost.py compares on and off)
    gather_ms: float | None = None  # the full service's VE_BATCH_GATHER_MS; None: its default

    def __str__(self) -> str:
        gather = "" if self.gather_ms is None else f"g{self.gather_ms:g}"
        return f"{self.workers}w/{self.pool}{gather}" + ("" if self.risk == "on" else f" risk {self.risk}")


def configs(text: str) -> list[Config]:
    """`2x10` (workers x pool), or `2x10g4` with the full service's gather window in ms."""
    out = []
    for part in text.split(","):
        shape, _, gather = part.lower().partition("g")
        workers, pool = shape.split("x")
        out.append(Config(int(workers), int(pool), gather_ms=float(gather) if gather else None))
    return out


@dataclass
class Step:
    side: str
    config: Config
    rate: float  # offered per second (open loop) or clients (closed loop)
    result: StepResult
    service_cpu_s: float
    postgres_cpu_s: float
    generator_cpu_s: float
    load: float
    target_ms: float

    @property
    def p50_ms(self) -> float:
        return self.result.percentile_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self.result.percentile_ms(0.99)

    @property
    def passed(self) -> bool:
        return self.result.failed == 0 and self.result.answered() > 0 and self.p99_ms <= self.target_ms

    def per_request_us(self, cpu_s: float) -> float:
        return 1e6 * cpu_s / max(1, self.result.answered())

    def throughput(self) -> float:
        return self.result.answered() / max(1e-9, self.result.wall_s)

    def cpu_text(self) -> str:
        wall = max(1e-9, self.result.wall_s)
        return (
            f"CPU/req service {self.per_request_us(self.service_cpu_s):4.0f} µs, postgres "
            f"{self.per_request_us(self.postgres_cpu_s):4.0f} µs, generator {self.per_request_us(self.generator_cpu_s):3.0f}"
            f" µs ({self.generator_cpu_s / wall:.0%} of a core)"
        )

    def line(self, unit: str) -> str:
        verdict = ("pass" if self.passed else "FAIL") if unit == "/s" else ""  # closed loop: no target
        lag = self.result.percentile_ms(0.99, self.result.lags_s) if self.result.lags_s else 0.0
        statuses = dict(sorted(self.result.statuses.items()))
        return (
            f"{self.side:<24} {str(self.config):<6} {self.rate:7.0f}{unit} -> {self.throughput():6.0f}/s  "
            f"p50 {self.p50_ms:6.2f}  p99 {self.p99_ms:7.2f} ms  failed {self.result.failed:4d}  "
            f"send lag p99 {lag:5.2f} ms  {self.cpu_text()}  load {self.load:4.2f}  {verdict}  {statuses}"
        )


class Meter:
    """CPU seconds of the service's tree, PostgreSQL's tree and this process (the generators report their own)."""

    def __init__(self, postgres_pid: int):
        self.postgres_pid = postgres_pid

    def read(self, server_pid: int, *, first: bool) -> tuple[float, float, float]:
        # This process's own reading of /proc falls outside the window: before it at the end, after it at the start.
        own = resource.getrusage(resource.RUSAGE_SELF) if not first else None
        server, postgres = tree_cpu_s(server_pid), tree_cpu_s(self.postgres_pid)
        own = own or resource.getrusage(resource.RUSAGE_SELF)
        return server, postgres, own.ru_utime + own.ru_stime


@dataclass
class Servers:
    """The servers up at a time: one baseline and one full service (they share PostgreSQL)."""

    database_url: str
    data_dir: Path
    log_dir: Path
    up: dict[str, tuple[Config, object, int]] = field(default_factory=dict)  # kind -> (config, process, port)

    def ensure(self, kind: str, config: Config) -> tuple[int, int]:
        """(port, pid) of a server of `kind` (baseline or full) with `config`, (re)started if needed."""
        from loadtest.redemption_load import start, stop
        from voucher_engine.db.engine import plain_url

        current = self.up.get(kind)
        if current is not None and current[0] == config:
            return current[2], current[1].pid  # type: ignore[attr-defined]
        if current is not None:
            stop(current[1])  # type: ignore[arg-type]
        port = free_port()
        env = {**os.environ, "DATABASE_URL": self.database_url, "VE_DATA_DIR": str(self.data_dir)}
        if kind == "baseline":
            env.update(DATABASE_URL=plain_url(self.database_url), BASELINE_POOL_SIZE=str(config.pool))
            command = [
                sys.executable, "-m", "uvicorn", "loadtest.baseline:app", "--workers", str(config.workers),
                "--port", str(port), "--log-level", "warning", "--no-access-log", "--loop", "uvloop",
                "--http", "httptools",
            ]  # fmt: skip
            ready = "/docs"
        else:
            env.update(VE_DB_POOL_SIZE=str(config.pool), VE_RISK=config.risk)
            if config.gather_ms is not None:
                env["VE_BATCH_GATHER_MS"] = str(config.gather_ms)
            command = [
                sys.executable, "-m", "voucher_engine.cli", "serve", "--workers", str(config.workers),
                "--port", str(port),
            ]  # fmt: skip
            ready = "/readyz"
        process = start(command, env, self.log_dir / f"{kind}-{config.workers}x{config.pool}.log")
        wait_ready(port, process, ready, timeout_s=300)
        self.up[kind] = (config, process, port)
        return port, process.pid

    def stop_all(self) -> None:
        from loadtest.redemption_load import stop

        for _, process, _ in self.up.values():
            stop(process)  # type: ignore[arg-type]
        self.up.clear()


BURST_GAP_S = 0.05


BURSTS_SHOWN = 8


def burst_groups(slow: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Slow answers (due moment, latency) grouped into bursts: those due less than BURST_GAP_S apart."""
    groups: list[list[tuple[float, float]]] = []
    for due, latency in sorted(slow):
        if groups and due - groups[-1][-1][0] < BURST_GAP_S:
            groups[-1].append((due, latency))
        else:
            groups.append([(due, latency)])
    return groups


def bursts(slow: list[tuple[float, float]], wall_s: float, began: float | None = None) -> str:
    """How the slow answers of a failing rung fall in time: a few bursts mean the service (or the machine) stalled
    now and then, slow answers spread over the whole rung mean it is beyond its capacity. With `began` (the load's
    start, time.monotonic), the first bursts' moments too: whether they come at the start (warming up) or later."""
    groups = burst_groups(slow)
    spread = sum(group[-1][0] - group[0][0] for group in groups)
    worst = max(groups, key=lambda group: max(latency for _, latency in group))
    moments = ""
    if began is not None:
        shown = ", ".join(
            f"{group[0][0] - began:.1f} s ({len(group)}, {max(latency for _, latency in group) * 1000:.0f} ms)"
            for group in groups[:BURSTS_SHOWN]
        )
        moments = f"; at {shown}{', ...' if len(groups) > BURSTS_SHOWN else ''}"
    return (
        f"slow answers (> 15 ms): {len(slow)} in {len(groups)} bursts covering {spread:.2f} of {wall_s:.1f} s; "
        f"the worst {max(latency for _, latency in worst) * 1000:.0f} ms in a burst of {len(worst)}{moments}"
    )


def ladder(start: float, factor: float, top: float) -> list[float]:
    rates, rate = [], start
    while rate <= top * 1.0001:
        rates.append(round(rate, -1))
        rate *= factor
    return rates


class Run:
    def __init__(self, args, generators: Generators, servers: Servers, meter: Meter):
        self.args = args
        self.gens = generators
        self.servers = servers
        self.meter = meter
        self.steps: list[Step] = []
        self.machine_before = machine_state()  # after seeding, before the first rung

    def _side_server(self, kind: str, config: Config) -> tuple[int, int]:
        return self.servers.ensure("baseline" if kind == "baseline" else "full", config)

    def measure(self, side: str, kind: str, config: Config, rate: float, *, clients: int = 0) -> Step:
        port, pid = self._side_server(kind, config)
        load = os.getloadavg()[0]
        before = self.meter.read(pid, first=True)
        try:
            if clients:
                result = self.gens.closed_loop(port, kind, clients, self.args.closed_s, expected_rate=3000)
            else:
                result = self.gens.open_loop(port, kind, rate, self.args.step_s, self.args.connections)
        except RuntimeError as exc:  # a generator ran out of vouchers, say: the step failed, the run goes on
            result = StepResult(failed=1, samples=[str(exc)], wall_s=1.0)
        after = self.meter.read(pid, first=False)
        step = Step(
            side,
            config,
            clients or rate,
            result,
            after[0] - before[0],
            after[1] - before[1],
            result.cpu_s + after[2] - before[2],
            load,
            self.args.target_ms,
        )
        print(step.line(" clients" if clients else "/s"), flush=True)
        for sample in result.samples:
            print(f"    unexpected: {sample}", flush=True)
        if not clients and not step.passed and result.slow:
            print(f"    {bursts(result.slow, result.wall_s)}", flush=True)
        time.sleep(self.args.pause_s)  # what a failing rung left queued drains before the next
        return step

    def warm(self, kind: str, config: Config) -> None:
        port, _ = self._side_server(kind, config)
        self.gens.closed_loop(port, kind, 16, WARM_UP_S, expected_rate=3000)

    def capacity(self, group: list[tuple[str, str, Config]]) -> dict[str, Step | None]:
        """Step each side of `group` up the ladder, alternating; answer each side's step at its capacity."""
        rates = ladder(self.args.start_rate, self.args.factor, self.args.max_rate)
        passed: dict[str, Step | None] = {side: None for side, _, _ in group}
        first_fail: dict[str, float] = {}
        fails = {side: 0 for side, _, _ in group}
        active = list(group)
        for rate in rates:
            for side, kind, config in list(active):
                step = self.measure(side, kind, config, rate)
                self.steps.append(step)
                if step.passed:
                    passed[side], fails[side] = step, 0
                    first_fail.pop(side, None)
                else:
                    fails[side] += 1
                    first_fail.setdefault(side, rate)
                    if fails[side] >= 2:
                        active.remove((side, kind, config))
            if not active:
                break
        for side, kind, config in group:  # one rung between the last pass and the first failure above it
            best = passed[side]
            if best is None or side not in first_fail:
                continue
            middle = round(math.sqrt(best.rate * first_fail[side]), -1)
            if best.rate < middle < first_fail[side]:
                step = self.measure(side, kind, config, middle)
                self.steps.append(step)
                if step.passed:
                    passed[side] = step
        return passed


def seed_all(args, tmp: Path) -> tuple[str, object, int]:
    from loadtest import baseline
    from loadtest.redemption_load import seed
    from voucher_engine.db import migrate
    from voucher_engine.db.engine import plain_url

    database_url = os.environ.get("DATABASE_URL")
    if database_url is None:
        from voucher_engine.db import embedded

        database_url = embedded.start(tmp / "data")
    migrate.upgrade(database_url)
    rungs = ladder(args.start_rate, args.factor, args.max_rate)
    groups = len(args.full)  # the full path spends vouchers; the baseline its own rows, as many
    per_side = sum(rung for rung in rungs if rung <= args.expect_knee * 1.25) * args.step_s
    closed = len(args.closed) * args.closed_s * 5000
    per_run = groups * per_side * 2 + closed * 2 + args.at * args.at_s * 2
    vouchers = args.vouchers or int(per_run * args.repeat + 20_000)
    print(f"seeding {vouchers:,} vouchers and as many baseline rows ...", flush=True)
    began = time.monotonic()
    seeded = asyncio.run(seed(database_url, tmp / "data", vouchers))
    asyncio.run(baseline.seed(plain_url(database_url), vouchers))
    print(f"seeded in {time.monotonic() - began:.0f} s", flush=True)
    warm_wal(database_url)
    return database_url, seeded, vouchers


def postgres_pid(database_url: str) -> int:
    """The postmaster's pid: the parent of a backend of ours."""
    import asyncpg

    from voucher_engine.db.engine import plain_url

    async def postmaster() -> int:
        conn = await asyncpg.connect(plain_url(database_url))
        try:  # read while the backend lives
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            with open(f"/proc/{backend}/stat") as handle:
                return int(handle.read().rsplit(")", 1)[1].split()[1])
        finally:
            await conn.close()

    return asyncio.run(postmaster())


def report(figures: Figures, args) -> None:
    run, best, closed, fixed = figures.run, figures.best, figures.closed, figures.fixed
    print()
    print(
        f"machine: {os.cpu_count()} cores; target p99 ≤ {args.target_ms:g} ms, nothing failing; rungs of {args.step_s:g} s"
    )
    print(f"the machine's yardsticks before the run: {run.machine_before}")
    print(f"                         and after it: {machine_state()}")
    print("capacity (each side at its best configuration):")
    print(f"  {'side':<24} {'config':<6} {'capacity':>9}  {'p50':>6}  {'p99':>6}  CPU per request at the knee  load")
    for side, _ in SIDES:
        step = best.get(side)
        if step is None:
            print(f"  {side:<24} no rung passed")
            continue
        print(
            f"  {side:<24} {str(step.config):<6} {step.rate:7,.0f}/s  {step.p50_ms:6.2f}  {step.p99_ms:6.2f}  "
            f"{step.cpu_text()}  {step.load:4.2f}"
        )
    for side, _ in SIDES[1:]:
        ratio = capacity_ratio(best, side)
        if ratio is not None:
            print(f"  ratio {side}: {ratio:.2f}x the baseline's capacity")
    if closed:
        print("closed loop (requests/s, p50/p99 ms):")
        counts = sorted({int(s.rate) for s in closed})
        names = [s for s, _ in SIDES if any(c.side == s for c in closed)]
        print("  clients  " + "  ".join(f"{n:>36}" for n in names) + "  ratio full/baseline")
        for count in counts:
            row = {s.side: s for s in closed if int(s.rate) == count}
            cells = [
                f"{row[n].throughput():7,.0f}/s {row[n].p50_ms:6.1f}/{row[n].p99_ms:6.1f} f{row[n].result.failed} l{row[n].load:.1f}"
                if n in row
                else ""
                for n in names
            ]
            ratio = closed_ratio(row)
            print(
                f"  {count:7d}  "
                + "  ".join(f"{c:>36}" for c in cells)
                + (f"  {ratio:.2f}x" if ratio is not None else "")
            )
    for step in fixed:
        print(
            f"offered {step.rate:,.0f}/s, {step.side} ({step.config}): p50 {step.p50_ms:.2f} ms, p99 {step.p99_ms:.2f} ms, "
            f"failed {step.result.failed}, load {step.load:.2f}"
        )


def _best_config(steps: list[Step], side: str, best: Step | None) -> Config | None:
    """The configuration of the side's capacity; when no rung passed anywhere, the one with the lowest p99 at the
    lowest rung offered (so that the closed loop and the fixed rate are not run on whichever came last)."""
    if best is not None:
        return best.config
    tried = [s for s in steps if s.side == side]
    if not tried:
        return None
    lowest = min(s.rate for s in tried)
    return min((s for s in tried if s.rate == lowest), key=lambda s: s.p99_ms).config


def capacity_ratio(best: dict[str, Step | None], side: str) -> float | None:
    """`side`'s capacity over the baseline's (None: either had no rung pass)."""
    base, step = best.get("baseline"), best.get(side)
    return step.rate / base.rate if base is not None and step is not None else None


def closed_ratio(row: dict[str, Step]) -> float | None:
    """The redemptions' closed-loop throughput over the baseline's at one client count (None: one side not run)."""
    if "baseline" not in row or "full: redemptions only" not in row:
        return None
    return row["full: redemptions only"].throughput() / row["baseline"].throughput()


@dataclass
class Figures:
    """One run's measurements: each side's capacity step, the closed loop's steps and the fixed rate's."""

    run: Run
    best: dict[str, Step | None]
    closed: list[Step]
    fixed: list[Step]

    def ratios(self) -> dict[str, float]:
        """The figures the issue's targets are stated in, as this run measured them (absent: not measured)."""
        out: dict[str, float] = {}
        for side, kind in SIDES[1:]:
            ratio = capacity_ratio(self.best, side)
            if ratio is not None:
                out[f"capacity, {kind}: x the baseline"] = ratio
        by_count: dict[int, dict[str, Step]] = {}
        for step in self.closed:
            by_count.setdefault(int(step.rate), {})[step.side] = step
        for count, row in sorted(by_count.items()):
            ratio = closed_ratio(row)
            if ratio is not None:
                out[f"closed loop, {count} clients: x the baseline"] = ratio
        for step in self.fixed:
            if step.side == "full: redemptions only":
                out[f"p99 at {step.rate:,.0f}/s offered, full path: ms"] = step.p99_ms
        return out


def one_run(run: Run, args, kinds: set[str]) -> Figures:
    """The ladder for each group of configurations, then the closed loop and the fixed rate at each side's best."""
    best: dict[str, Step | None] = {}
    closed: list[Step] = []
    fixed: list[Step] = []
    groups = list(itertools.zip_longest(args.baseline, args.full))
    for base_config, full_config in groups:
        # A side whose list of configurations is shorter sits the later groups out.
        group = [
            (side, kind, base_config if kind == "baseline" else full_config)
            for side, kind in SIDES
            if kind in kinds and (base_config if kind == "baseline" else full_config) is not None
        ]
        for _, kind, config in group:
            run.warm(kind, config)
        for side, step in run.capacity(group).items():
            if step is not None and (best.get(side) is None or step.rate > best[side].rate):  # type: ignore[union-attr]
                best[side] = step
    chosen = {kind: _best_config(run.steps, side, best.get(side)) for side, kind in SIDES}
    base_config = chosen["baseline"] or args.baseline[0]
    full_config = chosen["redeem"] or args.full[0]
    for count in args.closed:
        for side, kind in SIDES:
            if kind in kinds:
                config = base_config if kind == "baseline" else (chosen[kind] or full_config)
                closed.append(run.measure(side, kind, config, 0, clients=count))
    if args.at:
        saved, args.step_s = args.step_s, args.at_s
        fixed.append(run.measure("baseline", "baseline", base_config, args.at))
        fixed.append(run.measure("full: redemptions only", "redeem", full_config, args.at))
        args.step_s = saved
    return Figures(run, best, closed, fixed)


def spread(runs: list[Figures]) -> None:
    """Each target's figure over the repeated runs: whether one run can be trusted on this machine."""
    print(f"\nover {len(runs)} runs of the same code (median, lowest, highest; each run's in order):")
    measured = [figures.ratios() for figures in runs]
    for name in dict.fromkeys(name for ratios in measured for name in ratios):
        values = [ratios[name] for ratios in measured if name in ratios]
        each = ", ".join(f"{value:.2f}" for value in values)
        print(f"  {name:<46} {statistics.median(values):7.2f} {min(values):7.2f} {max(values):7.2f}   ({each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step-s", type=float, default=4.0, help="seconds per rung of the ladder")
    parser.add_argument("--start-rate", type=float, default=400.0)
    parser.add_argument("--factor", type=float, default=1.15, help="each rung offers this much more than the last")
    parser.add_argument("--max-rate", type=float, default=6000.0)
    parser.add_argument("--target-ms", type=float, default=25.0, help="p99 a rung must stay within")
    parser.add_argument("--baseline", type=configs, default=configs("2x16"), help="workers x pool, comma-separated")
    parser.add_argument("--full", type=configs, default=configs("2x10"), help="workers x pool, comma-separated")
    parser.add_argument("--sides", default="baseline,redeem,mix", help="which of baseline, redeem, mix to step")
    parser.add_argument("--closed", type=lambda t: [int(x) for x in t.split(",") if x], default=[16, 32, 64, 128])
    parser.add_argument("--closed-s", type=float, default=4.0)
    parser.add_argument("--at", type=float, default=1000.0, help="offered redemptions/s of the fixed-rate phase")
    parser.add_argument("--at-s", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=256, help="open-loop connections (tills), all processes")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument("--pause-s", type=float, default=0.5)
    parser.add_argument("--vouchers", type=int, default=0, help="default: enough for the run, per --expect-knee")
    parser.add_argument(
        "--expect-knee", type=float, default=4000.0, help="seed for ladders that end about here (seeding takes time)"
    )
    parser.add_argument("--lock", help="a file to flock around the measurements only (the seeding runs before)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run everything this many times, then print each figure's spread"
    )
    args = parser.parse_args()
    if not 1 <= args.repeat <= MAX_REPEAT:
        parser.error(f"--repeat: 1 to {MAX_REPEAT}")
    kinds = set(args.sides.split(","))
    tmp = scratch_dir("ve-capacity-")
    database_url, seeded, vouchers = seed_all(args, tmp)
    if args.lock:
        # Seeded outside the lock (set-up, not measurement); every figure is taken holding it.
        import fcntl

        waited = time.monotonic()
        lock = open(args.lock, "a")  # noqa: SIM115 - held until the process exits
        fcntl.flock(lock, fcntl.LOCK_EX)
        print(f"holding {args.lock} (waited {time.monotonic() - waited:.0f} s)", flush=True)
    meter = Meter(postgres_pid(database_url))
    generators = Generators(
        args.generators,
        seeded.key_id,
        seeded.secret,
        seeded.codes,
        seeded.wallets,
        vouchers,  # type: ignore[attr-defined]
    )
    servers = Servers(database_url, tmp / "data", tmp)
    runs: list[Figures] = []
    try:
        for repeat in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"\n=== run {repeat} of {args.repeat} ===", flush=True)
            figures = one_run(Run(args, generators, servers, meter), args, kinds)
            # The report's yardstick is taken with the servers stopped; the next run starts them again.
            servers.stop_all()
            report(figures, args)
            runs.append(figures)
    finally:
        generators.close()
        servers.stop_all()
    if len(runs) > 1:
        spread(runs)


if __name__ == "__main__":
    main()
