"""`voucher-engine bench ...`: the benchmarks that print figures, each run from the source checkout's `loadtest/`.

They are scripts rather than package code because they start servers, seed data and measure; this command only
finds and runs them, passing arguments through.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Benchmarks that print figures (run from a source checkout).", no_args_is_help=True)
SCRIPTS = {
    "contracts": (
        "bench_contracts.py",
        "Median time to evaluate the Shanghai dining contract, vs a hand-written lambda.",
    ),
    "checker": (
        "bench_checker.py",
        "The contract checker on generated worst-case contracts: each one's time, and the worst (bound 50 ms).",
    ),
    "ledger": ("bench_ledger.py", "Ledger verify, inclusion proof and CSV export over N transactions."),
    "campaigns": ("bench_campaigns.py", "Targeted issuance of 1,000,000 vouchers; first-come claims per second."),
    "attestations": ("bench_attestations.py", "CPU per attestation verified (budget 100 us), beside PyJWT's."),
    "redemption": ("redemption_load.py", "The signed redemption path against a bare baseline in the same run."),
    "payouts": ("bench_payouts.py", "A payout run over 100,000 merchants' balances: time and peak memory."),
    "stats": ("bench_stats.py", "Campaign stats over 1,000,000 redemptions: rollup time, GET latency, freshness."),
}


def _loadtest_dir() -> Path:
    folder = Path(__file__).resolve().parents[2] / "loadtest"
    if not folder.is_dir():
        raise typer.BadParameter("benchmarks run from a source checkout (no loadtest/ folder beside src/)")
    return folder


def _command(name: str, script: str, help_text: str) -> None:
    @app.command(name, help=help_text, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def run(ctx: typer.Context) -> None:
        folder = _loadtest_dir()
        result = subprocess.run([sys.executable, str(folder / script), *ctx.args], cwd=folder.parent)
        raise typer.Exit(result.returncode)


for _name, (_script, _help) in SCRIPTS.items():
    _command(_name, _script, _help)
