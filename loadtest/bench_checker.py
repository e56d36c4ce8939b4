"""The contract checker against generated worst cases: how long one check of each takes, and the worst of them.

`POST /v1/contracts/check` is open to every gov and auditor, so the checker must be cheap for *any* text within the
language's limits (contracts/limits.py): 64 KiB, 2,000 lines, 200 conditions, sets of 500, nesting of 12. Each
generator below builds the most expensive contract of one shape that we know of, filling the size limit; a few
go past one limit on purpose (they must be refused before any analysis, just as fast). The bound is 50 ms each.

    python loadtest/bench_checker.py [--repeat 5] [--bound-ms 50]      (or: voucher-engine bench checker)

Prints one line per contract (bytes, lines, ok/errors, wall time best and worst of the repeats, CPU time worst) and
the worst overall; exits 1 when the worst CPU time is over the bound. On a shared machine the wall time also counts
waiting for a core (the load average is printed beside it); the CPU time is the checker's own work.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voucher_engine.contracts import (
    check_contract,
    limits,
    parser,
    regions,
)

HEAD = """campaign "Worst case" issuer 000000
budget ¥10,000,000
voucher threshold: spend ¥100, get ¥20 off
quantity 500,000
valid from 2025-01-01 00:00 to 2025-01-31 23:59 China time
"""
PROVINCES = [
    "11",
    "12",
    "13",
    "14",
    "15",
    "21",
    "22",
    "23",
    "31",
    "32",
    "33",
    "34",
    "35",
    "36",
    "37",
    "41",
    "42",
    "43",
    "44",
    "45",
    "46",
    "50",
    "51",
    "52",
    "53",
    "54",
    "61",
    "62",
    "63",
    "64",
    "65",
]


# Real codes only (the checker refuses a code that is not in GB/T 2260, and a refused condition is never analysed).
COUNTIES = sorted(code for code in regions.NAMES if regions.level(code) == 3)
PREFECTURES = sorted(code for code in regions.NAMES if regions.level(code) == 2)


def _regions(rng: random.Random, count: int) -> list[str]:
    """Distinct county-level codes spread over every province, so that sets overlap only partly."""
    return sorted(rng.sample(COUNTIES, count))


def _tokens(text: str) -> int:
    """The words, numbers and symbols the parser's limit counts (parser.py counts them the same way)."""
    return len(parser._LEXEME.findall(parser._QUOTED_OR_COMMENT.sub(parser._blank, text)))


def _fill(
    lines: list[str],
    budget_bytes: int = limits.MAX_SOURCE_BYTES - 200,
    *,
    within_tokens: bool = True,
    token_budget: int = limits.MAX_TOKENS - 5,
) -> str:
    """The head, a payment block of `lines`, cut to fit the size limit and (unless told not to) the token limit."""
    body: list[str] = []
    size = len(HEAD.encode()) + 20
    tokens = _tokens(HEAD) + 3
    for line in lines:
        if size + len(line.encode()) + 1 > budget_bytes or (within_tokens and tokens + _tokens(line) > token_budget):
            break
        body.append(line)
        size += len(line.encode()) + 1
        tokens += _tokens(line)
    # Several conditions to a line when there are more than the line limit allows.
    per_line = -(-len(body) // (limits.MAX_LINES - 20))
    packed = [" ".join(body[i : i + per_line]) for i in range(0, len(body), per_line)] if body else []
    return HEAD + "payment {\n" + "\n".join(packed) + "\n}\n"


def _per_set(conditions: int) -> int:
    """Set elements per condition so that `conditions` of them fill the token limit (two tokens an element)."""
    return max(1, min(limits.MAX_SET_SIZE, (limits.MAX_TOKENS - 60) // conditions // 2 - 3))


def within_sets_overlapping(conditions: int = limits.MAX_CONDITIONS) -> str:
    """The reported weapon: many `merchant.region within {...}` whose sets all share one region (so no pair is
    ever found impossible and every pair would be looked at), the sets as large as the limits allow."""
    rng = random.Random(1)
    lines = []
    for _ in range(conditions):
        codes = ["310104", *_regions(rng, _per_set(conditions) - 1)]
        lines.append("merchant.region within {" + ", ".join(codes) + "}")
    return _fill(lines)


def reported_weapon() -> str:
    """The contract of the review's attack: 64 KiB of overlapping `within` sets under 200 conditions. It kept a
    worker busy for more than ten minutes; it is over the token limit now, and refused before parsing."""
    rng = random.Random(1)
    per_set = (limits.MAX_SOURCE_BYTES - 600) // limits.MAX_CONDITIONS // 8 - 4
    lines = []
    for _ in range(limits.MAX_CONDITIONS):
        lines.append("merchant.region within {" + ", ".join(["310104", *_regions(rng, per_set - 1)]) + "}")
    return _fill(lines, within_tokens=False)


def within_few_large_sets() -> str:
    """The same with twenty sets of about fifty regions each."""
    return within_sets_overlapping(20)


def within_provinces(conditions: int = limits.MAX_CONDITIONS) -> str:
    """Province-level sets: every area contains many counties of the others."""
    per_set = min(len(PROVINCES), _per_set(conditions))
    lines = []
    for i in range(conditions):
        codes = [f"{p}0000" for p in (PROVINCES[i % 3 :] + PROVINCES)[:per_set]]
        lines.append("merchant.region within {" + ", ".join(codes) + "}")
    return _fill(lines)


def in_sets_with_within() -> str:
    """One `in` of 500 regions, then `within` after `within`: each would test every allowed region again."""
    rng = random.Random(2)
    codes = _regions(rng, limits.MAX_SET_SIZE - 100)
    lines = ["merchant.region in {" + ", ".join(codes) + "}"]
    for i in range(limits.MAX_CONDITIONS - 1):
        lines.append("merchant.region within {" + f"{PROVINCES[i % len(PROVINCES)]}0000, 000000" + "}")
    return _fill(lines)


def ranges_and_sets() -> str:
    """Ranges and sets on one field: each range would test every value still allowed."""
    days = [f"2025-{month:02d}-{day:02d}" for month in range(1, 13) for day in range(1, 29)]
    lines = ["payment.date in {" + ", ".join(days[:300]) + "}"]
    for i in range(limits.MAX_CONDITIONS - 1):
        lines.append(f"payment.date >= {days[i]}" if i % 2 == 0 else f"payment.date <= {days[-1 - i]}")
    return _fill(lines)


def nested_ors() -> str:
    """Conditions nested to the depth limit, each level an `or`, the comparisons spread over them."""
    depth = limits.MAX_NESTING_DEPTH - 1
    lines = []
    for line_no in range(limits.MAX_CONDITIONS // (depth + 1)):
        text = f"merchant.region within {{{PREFECTURES[line_no % 20]}}}"
        for level in range(depth):
            text = f'({text} or merchant.mcc = "{5800 + level}")'
        lines.append(text)
    return _fill(lines)


def over_the_condition_limit() -> str:
    """Far more conditions than allowed, each tiny: must be refused before any of them is analysed."""
    return _fill([f"merchant.region within {{{31 + i % 30}0000}}" for i in range(10_000)], within_tokens=False)


def unknown_names() -> str:
    """Thousands of misspelt fields: each would cost a fuzzy match for a "did you mean" if analysed."""
    return _fill([f"merchant.regoin{i} = 1" for i in range(10_000)], within_tokens=False)


def long_numerals() -> str:
    """Numbers of thousands of digits in every place a number goes: refused as too long, never a crash."""
    digits = "9" * 5_000
    return (
        f'campaign "Numerals" issuer 310000\nbudget ¥10,000\nvoucher percent {digits}.5% off up to ¥10\n'
        f"quantity {digits}\nlimit {digits} per holder\nvalid for {digits} days from issue\n"
        f"payment {{ order.amount >= ¥{digits} }}\nholder {{ age >= {digits} }}\n"
    )


def many_lines() -> str:
    """The line limit reached with comments and blank lines between the conditions."""
    lines = []
    for i in range(limits.MAX_LINES - 20):
        lines.append(f"merchant.region within {{{PROVINCES[i % len(PROVINCES)]}0000}}" if i % 10 == 0 else f"# {i}")
    return _fill(lines)


def item_rates() -> str:
    """A per-item voucher with the most rates, each a condition with a set as large as the token limit allows."""
    per_rate = (limits.MAX_TOKENS - 80) // limits.MAX_RATES // 2 - 6
    rates = ", ".join(
        f"{5 + i}% when item.category in {{" + ", ".join(f'"c{i}-{j}"' for j in range(per_rate)) + "}"
        for i in range(limits.MAX_RATES)
    )
    return (
        'campaign "Rates" issuer 310000\nbudget ¥10,000,000\nquantity 1,000\n'
        "valid from 2025-01-01 00:00 to 2025-01-31 23:59 China time\n"
        f"voucher per item: up to ¥500 {{ {rates} }}\n"
    )


GENERATORS: dict[str, Callable[[], str]] = {
    "the reported weapon": reported_weapon,
    "within sets, overlapping": within_sets_overlapping,
    "within, 20 large sets": within_few_large_sets,
    "within sets, provinces": within_provinces,
    "in {500} with within": in_sets_with_within,
    "ranges and sets": ranges_and_sets,
    "nested ors": nested_ors,
    "over the condition limit": over_the_condition_limit,
    "unknown names": unknown_names,
    "long numerals": long_numerals,
    "many lines": many_lines,
    "item rates": item_rates,
}


def measure(source: str, repeat: int) -> tuple[float, float, float, object]:
    """(best wall ms, worst wall ms, worst CPU ms, result). CPU time is this process's own: on a shared machine the
    wall time also counts the time spent waiting for a core, the CPU time only the checker's work."""
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = check_contract(source)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return min(walls) * 1000, max(walls) * 1000, max(cpus) * 1000, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="checks of each contract (best and worst shown)")
    parser.add_argument("--bound-ms", type=float, default=50.0, help="the bound one check must stay within")
    args = parser.parse_args(argv)
    check_contract(HEAD)  # warm up: the grammar's tables are built on first import, not on first check
    worst_name, worst_ms, worst_wall = "", 0.0, 0.0
    columns = ("bytes", "lines", "result", "wall best", "wall worst", "CPU worst")
    print(f"{'contract':<26} {columns[0]:>7} {columns[1]:>6}  {columns[2]:<26} " + " ".join(columns[3:]))
    for name, make in GENERATORS.items():
        source = make()
        best, worst, cpu, result = measure(source, args.repeat)
        outcome = "ok" if result.ok else f"{len(result.errors)} error(s)"
        if result.ok and result.warnings:
            outcome += f", {len(result.warnings)} warning(s)"
        size = len(source.encode())
        lines = source.count("\n") + 1
        print(f"{name:<26} {size:>7,} {lines:>6}  {outcome:<26} {best:>9.1f} {worst:>10.1f} {cpu:>9.1f}")
        worst_wall = max(worst_wall, worst)
        if cpu > worst_ms:
            worst_name, worst_ms = name, cpu
    verdict = "within" if worst_ms <= args.bound_ms else "OVER"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"worst: {worst_ms:.1f} ms of CPU ({worst_name}), {worst_wall:.1f} ms of wall time at load {load:.1f} on "
        f"{os.cpu_count()} cores; bound {args.bound_ms:.0f} ms: {verdict}"
    )
    return 0 if worst_ms <= args.bound_ms else 1


if __name__ == "__main__":
    sys.exit(main())
