"""Benchmark: evaluating the Shanghai dining contract against one payment, compiled vs a hand-written lambda.

Prints the median time per evaluation of the compiled contract (`CompiledContract.evaluate`) and of a lambda
written by hand for the same rule, over many timeit repetitions, and their ratio. Targets: at most 2 µs median
on a 2-core machine and less than 10x the hand-written lambda. Nothing here asserts; it reports.

    python loadtest/bench_contracts.py [--repeat 31] [--number 20000]
    voucher-engine bench contracts            (the main CLI mounts `run`)
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
try:
    from voucher_engine.contracts import Payment, compile_contract
except ImportError:  # run as a plain script from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "src"))
    from voucher_engine.contracts import Payment, compile_contract

DINING = ROOT / "contracts" / "shanghai-dining-2025.contract"
# Both bounds exist so a typo on the command line cannot make the benchmark run for hours.
MAX_REPEAT = 1_000
MAX_NUMBER = 1_000_000


def _median_ns(fn: Callable[[Any], Any], arg: Any, repeat: int, number: int) -> float:
    timer = timeit.Timer(lambda: fn(arg))
    # The lambda wrapper costs the same for both candidates; measure it and take it out.
    empty = timeit.Timer(lambda: None)
    overhead = statistics.median(empty.repeat(repeat=repeat, number=number)) / number
    runs = timer.repeat(repeat=repeat, number=number)
    return max(statistics.median(runs) / number - overhead, 0.0) * 1e9


def run(
    repeat: int = 31, number: int = 20_000, contract_path: Path = DINING, echo: Callable[[str], Any] = print
) -> dict:
    """Time both evaluators; print and return {"compiled_ns", "lambda_ns", "ratio", "compile_ms", ...}."""
    repeat = max(1, min(repeat, MAX_REPEAT))
    number = max(1, min(number, MAX_NUMBER))
    source = contract_path.read_text(encoding="utf-8")
    started = timeit.default_timer()
    contract = compile_contract(source)
    compile_ms = (timeit.default_timer() - started) * 1e3

    payment = Payment(
        merchant_mcc="5812",
        merchant_region="310104",
        merchant_tags=frozenset(),
        at=dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        order_amount_fen=12_000,
    )
    mccs = frozenset({"5812", "5813", "5814"})
    # The same rule by hand: categories, region within Shanghai, spend ¥100, ¥20 off.
    by_hand = lambda p: (
        2000
        if (
            p.merchant_mcc in mccs
            and p.merchant_region[:2] == "31"  # noqa: E731
            and p.order_amount_fen >= 10_000
        )
        else 0
    )
    assert contract.evaluate(payment).subsidy_fen == by_hand(payment) == 2000

    compiled_ns = _median_ns(contract.evaluate, payment, repeat, number)
    lambda_ns = _median_ns(by_hand, payment, repeat, number)
    ratio = compiled_ns / lambda_ns if lambda_ns else float("inf")
    result = {
        "contract": contract.name,
        "repeat": repeat,
        "number": number,
        "compile_ms": round(compile_ms, 2),
        "compiled_ns": round(compiled_ns, 1),
        "lambda_ns": round(lambda_ns, 1),
        "ratio": round(ratio, 2),
    }
    echo(f"contract:            {contract.name} ({contract.kind})")
    echo(f"check + compile:     {compile_ms:.2f} ms (once per contract)")
    echo(f"compiled evaluate:   {compiled_ns:.0f} ns median over {repeat} x {number:,} calls")
    echo(f"hand-written lambda: {lambda_ns:.0f} ns median")
    echo(f"ratio:               {ratio:.2f}x   (targets: <= 2000 ns, < 10x)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=31, help="timeit repetitions (the median is taken)")
    parser.add_argument("--number", type=int, default=20_000, help="calls per repetition")
    args = parser.parse_args(argv)
    run(repeat=args.repeat, number=args.number)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
