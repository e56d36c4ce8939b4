"""What the risk rules cost the till, measured one service at a time.

    python loadtest/risk_cost.py [--rate 1000] [--slice-s 10] [--pairs 6] [--clients 32] [--closed-s 4] [--control]
    python loadtest/redemption_load.py --risk alone [--rate 1000] [--duration 60] [--open-pairs 6]   # the same

Issue 15 asks that with the default rules on, redemption throughput stays ≥ 90 % of with them off and p99 at 1,000
offered redemptions/s grows by no more than 5 ms. `redemption_load.py --risk both` keeps two services up (rules on,
rules off) over one PostgreSQL and alternates load between them; on two cores the idle one's background processes and
the other's leftovers blur a p99 difference of a few milliseconds. Here only one service runs at a time:

- a pair is two slices, rules on and rules off, each first in every other pair; a slice (re)starts `serve` with
  `VE_RISK` set, warms it for two seconds, measures throughput closed loop at `--clients`, then offers `--rate`
  open loop for `--slice-s` (latency from each request's due moment: a queue is counted, never hidden);
- each side has a database of its own on the same server, seeded alike: the window detector of the service with
  rules on reads every redemption of its database, and with one database it would spend the first seconds of each
  slice catching up on the redemptions the other service made meanwhile, a cost no production service has (measured
  so: the slices with rules on that followed a slice with rules off ran at 56-74 % of its throughput, the others at
  89-92 %);
- PostgreSQL's WAL is warmed first (`harness.warm_wal`), so no slice meets a new cluster's segment zero-filling;
- it prints each pair, then the throughput of all slices of a side together, their pooled p50/p99 and the median
  of the pairs' p99 differences (one slow stretch of the machine moves one pair, not the median);
- `--control` runs the same comparison with the rules on in both sides: what it prints is the comparison's own
  noise, the yardstick for the difference the rules make.

The generator is `loadtest/lean_client.py` (two processes), as in `capacity.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from loadtest.capacity import Config, Servers, bursts  # noqa: E402
from loadtest.harness import fetch, scratch_dir, warm_wal  # noqa: E402
from loadtest.lean_client import Generators, StepResult  # noqa: E402

WARM_S = 2.0
WARM_CLIENTS = 16
CONNECTIONS = 256  # open-loop connections (tills), all generator processes
FAST_CLOSED_RATE = 4000  # requests signed ahead per second of closed loop: more than this machine serves


@dataclass
class Side:
    name: str
    risk: str
    servers: Servers
    generators: Generators
    closed: StepResult = field(default_factory=StepResult)
    closed_wall_s: float = 0.0
    opened: StepResult = field(default_factory=StepResult)

    def throughput(self) -> float:
        return self.closed.answered() / self.closed_wall_s if self.closed_wall_s else 0.0


def slice_of(side: Side, args) -> tuple[float, float, float]:
    """One slice of `side`: its service started alone, throughput closed loop, then the offered rate open loop.
    Returns (requests/s closed loop, p99 ms open loop, load average)."""
    generators = side.generators
    port, _ = side.servers.ensure("full", Config(args.workers, args.pool, risk=side.risk))
    generators.closed_loop(port, "redeem", WARM_CLIENTS, WARM_S, expected_rate=FAST_CLOSED_RATE)
    began = time.monotonic()
    closed = generators.closed_loop(port, "redeem", args.clients, args.closed_s, expected_rate=FAST_CLOSED_RATE)
    wall = time.monotonic() - began
    side.closed.merge(closed)
    side.closed_wall_s += wall
    began = time.monotonic()
    opened = generators.open_loop(port, "redeem", args.rate, args.slice_s, CONNECTIONS)
    side.opened.merge(opened)
    p99 = opened.percentile_ms(0.99)
    if opened.slow:
        print(f"      {side.name}: {bursts(opened.slow, opened.wall_s, began)}", flush=True)
    if opened.failed or closed.failed:
        print(f"      {side.name}: failed {closed.failed} closed loop, {opened.failed} open loop", flush=True)
    return closed.answered() / wall, p99, os.getloadavg()[0]


def seed(args, tmp: Path) -> list[tuple[str, Path, object]]:
    """Two databases on one server, seeded alike: (URL, data folder, what was seeded) for each side."""
    from sqlalchemy.engine import make_url

    from loadtest import baseline
    from loadtest.redemption_load import seed as seed_campaign
    from voucher_engine.db import migrate
    from voucher_engine.db.engine import plain_url

    url = os.environ.get("DATABASE_URL")
    if url is None:
        from voucher_engine.db import embedded

        url = embedded.start(tmp / "data")
    per_slice = WARM_S * FAST_CLOSED_RATE + args.closed_s * FAST_CLOSED_RATE + args.rate * args.slice_s
    vouchers = int(per_slice * args.pairs * 1.2) + 10_000
    sides = []
    for letter in "ab":
        name = f"ve_risk_cost_{letter}_{uuid.uuid4().hex[:8]}"
        fetch(url, f"CREATE DATABASE {name}")
        side_url = make_url(url).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(side_url)
        print(f"seeding {vouchers:,} vouchers in {name} ...", flush=True)
        data_dir = tmp / f"data-{letter}"
        seeded = asyncio.run(seed_campaign(side_url, data_dir, vouchers))
        asyncio.run(baseline.seed(plain_url(side_url), 1))
        sides.append((side_url, data_dir, seeded))
    warm_wal(url)
    return sides


def run(args) -> None:
    tmp = scratch_dir("ve-risk-cost-")
    made = seed(args, tmp)
    names = ("rules on", "rules on (B)" if args.control else "rules off")
    risks = ("on", "on" if args.control else "off")
    sides = [
        Side(
            name,
            risk,
            Servers(url, data_dir, data_dir),  # its logs beside its data
            Generators(2, seeded.key_id, seeded.secret, seeded.codes, seeded.wallets, 1),
        )
        for name, risk, (url, data_dir, seeded) in zip(names, risks, made, strict=True)
    ]
    on, off = sides
    differences: list[float] = []
    try:
        for pair in range(args.pairs):
            order = (on, off) if pair % 2 == 0 else (off, on)
            figures = {}
            for side in order:
                for other in sides:
                    other.servers.stop_all()  # one service at a time
                figures[side.name] = slice_of(side, args)
            (rate_on, p99_on, load_on), (rate_off, p99_off, load_off) = figures[on.name], figures[off.name]
            differences.append(p99_on - p99_off)
            print(
                f"pair {pair + 1}/{args.pairs} ({order[0].name} first): closed loop {rate_on:,.0f} vs {rate_off:,.0f}/s "
                f"({rate_on / rate_off:.1%}); p99 at {args.rate:,.0f}/s {p99_on:.1f} vs {p99_off:.1f} ms "
                f"({p99_on - p99_off:+.1f}); load {load_on:.1f}/{load_off:.1f}",
                flush=True,
            )
    finally:
        for side in sides:
            side.servers.stop_all()
            side.generators.close()
    print()
    print(f"one service at a time, {args.pairs} pairs; {args.workers} worker(s), pool {args.pool}")
    for side in (on, off):
        print(
            f"  {side.name:<12} closed loop ({args.clients} clients): {side.throughput():,.0f}/s; "
            f"open loop {args.rate:,.0f}/s: p50 {side.opened.percentile_ms(0.5):.1f} ms, "
            f"p99 {side.opened.percentile_ms(0.99):.1f} ms (all slices pooled), failed {side.opened.failed}"
        )
    label = "control (rules on in both)" if args.control else "risk"
    print(f"{label}: throughput {on.throughput() / off.throughput():.1%} of {off.name}")
    print(
        f"{label}: p99 difference at {args.rate:,.0f}/s, median of {len(differences)} pairs "
        f"{statistics.median(differences):+.1f} ms (pairs {min(differences):+.1f} to {max(differences):+.1f}); "
        f"pooled {on.opened.percentile_ms(0.99) - off.opened.percentile_ms(0.99):+.1f} ms"
    )


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered redemptions per second (open loop)")
    parser.add_argument("--slice-s", type=float, default=10.0, help="seconds of open loop per slice")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--clients", type=int, default=32, help="closed-loop clients for the throughput")
    parser.add_argument("--closed-s", type=float, default=4.0, help="seconds of closed loop per slice")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--control", action="store_true", help="rules on in both sides: the comparison's noise")
    args = parser.parse_args(argv)
    if not 1 <= args.pairs <= 100 or args.rate <= 0 or args.slice_s <= 0:
        parser.error("--pairs 1..100, --rate and --slice-s above 0")
    return args


if __name__ == "__main__":
    run(arguments())
