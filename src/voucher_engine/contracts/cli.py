"""`voucher-engine contract ...`: check contract files and explain what a contract does with a payment.

A typer sub-app (`app`), mounted by the main CLI. `check FILE...` prints diagnostics the way compilers do
(`file:line:col: error: message`) and exits 1 when any file has an error. `explain FILE --payment JSON` says what
would happen to one payment and why: the validity window, the holder's conditions (with --holder), the payment's
conditions, and the subsidy; it exits 0 when the payment would settle and 1 when it would be refused.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from . import limits
from .contract import check_contract, compile_contract
from .diagnostics import ContractInvalid
from .explain import yuan
from .jsonio import payment_from_json
from .sample import explain

app = typer.Typer(
    help="Check voucher contracts and explain their decisions.", no_args_is_help=True, add_completion=False
)


def _read(path: Path) -> str:
    """A contract file's text; refuses oversized files before reading them whole."""
    size = path.stat().st_size
    if size > limits.MAX_SOURCE_BYTES:
        raise ValueError(f"the file is {size:,} bytes long; the limit is {limits.MAX_SOURCE_BYTES:,} bytes (64 KiB)")
    return path.read_text(encoding="utf-8")


def _json_argument(text: str, what: str) -> Any:
    """JSON given inline, or `@file` / a path to a file holding it."""
    raw = text.strip()
    if raw.startswith("@") or not raw.startswith(("{", "[")):
        path = Path(raw.lstrip("@"))
        if path.stat().st_size > 1024 * 1024:
            raise ValueError(f"the {what} file is larger than 1 MiB")
        raw = path.read_text(encoding="utf-8")
    return json.loads(raw, parse_float=lambda s: (_ for _ in ()).throw(ValueError(f"{what}: no decimals, use fen")))


@app.command("check")
def check_command(
    files: List[Path] = typer.Argument(..., help="Contract files to check.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per file instead."),
) -> None:
    """Check contract files; print each error and warning as file:line:col. Exit 1 if any has an error."""
    failed = False
    for path in files:
        try:
            source = _read(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            failed = True
            typer.echo(f"{path}:1:1: error: cannot read the file: {exc}")
            continue
        result = check_contract(source)
        failed = failed or not result.ok
        if as_json:
            typer.echo(json.dumps({"file": str(path), **result.to_dict()}, ensure_ascii=False))
            continue
        for diagnostic in result.errors + result.warnings:
            typer.echo(diagnostic.format(str(path)))
        if result.ok:
            s = result.summary
            typer.echo(
                f"{path}: ok: {s['name']!r}, {s['kind']} voucher worth up to {yuan(s['face_value_fen'])}, "
                f"{s['quantity']:,} vouchers, budget {yuan(s['budget_fen'])}"
            )
    raise typer.Exit(1 if failed else 0)


@app.command("explain")
def explain_command(
    file: Path = typer.Argument(..., help="The contract file."),
    payment: str = typer.Option(
        ...,
        "--payment",
        help="The payment as JSON, or @file: "
        '{"merchant": {"mcc", "region_code", "tags"}, "at", "order_amount_fen", "items"?, '
        '"balance_fen"?}',
    ),
    holder: Optional[str] = typer.Option(None, "--holder", help="The holder's attributes as JSON, or @file."),
    issued_at: Optional[str] = typer.Option(
        None, "--issued-at", help="When the voucher was issued (RFC 3339), for validity counted from issue."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
) -> None:
    """Say what the contract does with one payment, and why."""
    try:
        contract = compile_contract(_read(file))
    except ContractInvalid as exc:
        for diagnostic in exc.errors:
            typer.echo(diagnostic.format(str(file)))
        raise typer.Exit(1) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        typer.echo(f"{file}:1:1: error: cannot read the file: {exc}")
        raise typer.Exit(1) from None
    try:
        data = _json_argument(payment, "payment")
        p = payment_from_json(data)
        attributes = (
            _json_argument(holder, "holder") if holder else (data.get("holder") if isinstance(data, dict) else None)
        )
        issued_text = issued_at or (data.get("issued_at") if isinstance(data, dict) else None)
        issued = dt.datetime.fromisoformat(issued_text.replace("Z", "+00:00")) if issued_text else None
        if issued is not None and issued.tzinfo is None:
            raise ValueError("--issued-at must carry an offset, like +08:00")
    except (OSError, ValueError, AttributeError) as exc:
        typer.echo(f"error: {exc}")
        raise typer.Exit(2) from None

    answer = explain(contract, p, attributes, issued)
    code = answer["code"]
    if as_json:
        typer.echo(json.dumps(answer, ensure_ascii=False, indent=2))
        raise typer.Exit(1 if code else 0)  # a refusal (NOT_ELIGIBLE, RULE_NOT_SATISFIED, ...) is not a success
    typer.echo(f"{contract.name} ({contract.kind} voucher), order {yuan(p.order_amount_fen)} at {p.at.isoformat()}")
    validity = answer["validity"]
    if "valid_from" in validity:
        typer.echo(
            f"  valid from {validity['valid_from']} until {validity['valid_until']} (end excluded): "
            + (
                "the payment is inside it"
                if code not in ("VOUCHER_EXPIRED", "VOUCHER_NOT_YET_VALID")
                else f"the payment is outside it -> {code}"
            )
        )
    else:
        typer.echo(
            f"  valid for {validity['seconds_from_issue'] // 3600} hours from issue "
            "(give --issued-at to check the window)"
        )
    for title, failures in (("holder", answer.get("holder_explain", [])), ("payment", answer["explain"])):
        for f in failures:
            where = f" (item {f['item']})" if f.get("item") else ""
            typer.echo(f"  {title} condition failed, line {f['line']}, column {f['column']}: {f['rule']}{where}")
            typer.echo(f"      actual: {json.dumps(f['actual'], ensure_ascii=False)}; expected: {f['expected']}")
    if not answer["explain"]:
        typer.echo("  all payment conditions hold")
    # A refused payment is paid nothing, whatever its conditions would have paid (contracts/sample.explain).
    typer.echo(
        f"  subsidy {yuan(answer['subsidy_fen'])} ({answer['subsidy_fen']} fen), "
        f"the holder pays {yuan(answer['payable_fen'])}"
    )
    typer.echo(f"  result: {code or 'ok'}")
    if code:
        raise typer.Exit(1)
