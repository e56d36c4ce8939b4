"""`voucher-engine ledger ...`: verify (against the database, or offline), export, checkpoint, check-proof,
check-consistency, bench.

`verify` exits 0 when everything holds and 1 with the first discrepancy's seq otherwise (2 for a usage error).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from voucher_engine.config import Settings

app = typer.Typer(help="Verify the ledger offline or against the database.", no_args_is_help=True, add_completion=False)

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Where the embedded PostgreSQL and keys live.")]
PublicKeyOpt = Annotated[
    Optional[str],
    typer.Option(
        "--public-key", help="The pinned checkpoint key: base64 of the raw 32 bytes, a PEM, or a file holding either."
    ),
]


def _database(data_dir: Path | None) -> tuple[str, Settings]:
    from voucher_engine.config import get_settings, settings_for
    from voucher_engine.db.embedded import NoEngineData
    from voucher_engine.db.migrate import prepare_database

    try:
        url = prepare_database(settings_for(data_dir), existing=True)
    except NoEngineData as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    return url, get_settings()


def _progress(what: str):
    """A progress bar on standard error while it is a terminal, and silent otherwise (a pipe, a file, CI):
    standard output carries the command's own answer, unchanged."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("transactions"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
        transient=True,
    )


def _counted_lines(handle, bar, task, every: int = 8192):
    """The file's lines, telling the bar how many rows were read every `every` lines (cheap for a million)."""
    rows = 0
    for rows, line in enumerate(handle):  # line 0 is the header: after line i, i rows were read
        yield line
        if rows % every == 0:
            bar.update(task, completed=rows)
    bar.update(task, completed=rows)


def _print_report(report, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.document(), indent=2) + "\n")
        return
    first = report.first
    typer.echo(
        f"transactions: {report.transactions}; checkpoints verified: {report.checkpoints_verified}; "
        f"accounts checked: {report.accounts_checked}; root: {report.root_hash}"
    )
    for note in report.notes:
        typer.echo(f"note: {note}")
    if report.transactions == 0:
        typer.echo("note: the ledger is empty: there was nothing to check (is this the data you meant?)")
    if first is None:
        typer.echo("OK: every hash, the tree, every checkpoint signature and every balance verify")
        return
    typer.echo(f"FAILED at {first.line()}")
    for other in sorted(report.discrepancies, key=lambda d: (d.seq is None, d.seq or 0))[1:20]:
        typer.echo(f"  also {other.line()}")


@app.command()
def verify(
    data_dir: DataDir = None,
    public_key: PublicKeyOpt = None,
    csv_file: Annotated[Optional[Path], typer.Option("--csv", help="Verify this export offline instead.")] = None,
    checkpoint: Annotated[
        Optional[list[Path]],
        typer.Option("--checkpoint", help="A checkpoint JSON file (as served); repeatable. Offline mode."),
    ] = None,
    partial: Annotated[bool, typer.Option("--partial", help="The CSV is a filtered export (a campaign's).")] = False,
    trusted_tree_size: Annotated[
        Optional[int],
        typer.Option(help="Size of the newest checkpoint already trusted: an older one is refused as a replay."),
    ] = None,
    no_sequence: Annotated[bool, typer.Option("--no-sequence", help="Do not sequence queued batches first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute every hash, the tree and every balance; check every checkpoint's signature."""
    from voucher_engine.ledger import checkpoints as cps
    from voucher_engine.ledger import verify as verifier

    try:
        pinned = cps.parse_public_key(public_key) if public_key else None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if csv_file is not None:
        if pinned is None:
            typer.echo("error: offline verification needs --public-key (the key you pinned)", err=True)
            raise typer.Exit(2)
        documents = [json.loads(path.read_text()) for path in checkpoint or []]
        documents = [doc.get("checkpoint", doc) for doc in documents]
        bar = _progress("verifying")
        with bar, csv_file.open(newline="", encoding="utf-8") as handle:
            task = bar.add_task("verify", total=None)
            report = verifier.verify_csv(
                _counted_lines(handle, bar, task),
                pinned,
                documents,
                partial=partial,
                trusted_tree_size=trusted_tree_size,
            )
    else:
        url, settings = _database(data_dir)
        if pinned is None:
            pinned = cps.raw_public_key(cps.load_signing_key(settings.resolved_signing_key_path))
        report = asyncio.run(_verify_database(url, pinned, not no_sequence))
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


async def _verify_database(url: str, pinned: bytes, sequence_first: bool):
    from voucher_engine.db.engine import create_engine
    from voucher_engine.ledger import verify as verifier

    engine = create_engine(url, pool_size=2)
    bar = _progress("verifying")
    task = bar.add_task("verify", total=None)
    try:
        with bar:
            return await verifier.verify_database(
                engine,
                pinned,
                sequence_first=sequence_first,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        await engine.dispose()


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="The CSV file to write ('-' for standard output).")],
    data_dir: DataDir = None,
    campaign_id: Annotated[Optional[str], typer.Option(help="Only this campaign's transactions.")] = None,
) -> None:
    """Write the ledger (or a campaign's part) as the CSV that `verify --csv` reads."""
    url, _ = _database(data_dir)
    asyncio.run(_export(url, out, campaign_id))


async def _export(url: str, out: Path, campaign_id: str | None) -> None:
    from voucher_engine.db.engine import create_engine
    from voucher_engine.ledger import export as exporter
    from voucher_engine.ledger import service

    engine = create_engine(url, pool_size=2)
    total = None
    if campaign_id is None:  # the whole ledger: every sequenced transaction (a campaign's part: counted as it comes)
        async with engine.connect() as conn:
            total = await service.tree_size(conn)
    handle = sys.stdout.buffer if str(out) == "-" else out.open("wb")
    bar = _progress("exporting")
    task = bar.add_task("export", total=total)
    rows = -1  # the header line
    try:
        with bar:
            async for chunk in exporter.csv_chunks(engine, campaign_id=campaign_id):
                handle.write(chunk)
                rows += chunk.count(b"\n")
                bar.update(task, completed=max(0, rows))
    finally:
        if handle is not sys.stdout.buffer:
            handle.close()
        await engine.dispose()


@app.command()
def checkpoint(data_dir: DataDir = None) -> None:
    """Sequence everything committed, sign a checkpoint of the head, and print it as JSON."""
    url, settings = _database(data_dir)

    async def make():
        from voucher_engine.db.engine import create_engine
        from voucher_engine.ledger import checkpoints as cps
        from voucher_engine.ledger import service

        engine = create_engine(url, pool_size=2)
        try:
            return await service.checkpoint_now(engine, cps.load_signing_key(settings.resolved_signing_key_path))
        finally:
            await engine.dispose()

    found = asyncio.run(make())
    if found is None:
        typer.echo("the ledger is empty: nothing to sign", err=True)
        raise typer.Exit(1)
    sys.stdout.write(json.dumps(found.document(), indent=2) + "\n")


@app.command("check-proof")
def check_proof(
    transaction: Annotated[Path, typer.Option(help="The transaction JSON, as served.")],
    proof: Annotated[Path, typer.Option(help="Its inclusion proof JSON, as served (with its checkpoint).")],
    public_key: Annotated[str, typer.Option("--public-key", help="The pinned key (base64, PEM or a file).")],
    trusted_tree_size: Annotated[Optional[int], typer.Option(help="Refuse checkpoints older than this.")] = None,
) -> None:
    """Offline: check that a transaction is in the signed tree its proof names."""
    from voucher_engine.ledger import checkpoints as cps
    from voucher_engine.ledger import merkle
    from voucher_engine.ledger import verify as verifier

    try:
        size = verifier.verify_proof(
            json.loads(transaction.read_text()),
            json.loads(proof.read_text()),
            cps.parse_public_key(public_key),
            trusted_tree_size=trusted_tree_size,
        )
    except (merkle.ProofError, cps.CheckpointError, ValueError, KeyError) as exc:
        typer.echo(f"FAILED: {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"OK: included in the signed tree of {size} transactions")


@app.command("check-consistency")
def check_consistency(
    first: Annotated[Path, typer.Option(help="The older checkpoint JSON you verified before, as served.")],
    second: Annotated[Path, typer.Option(help="The newer checkpoint JSON, as served.")],
    proof: Annotated[Path, typer.Option(help="GET /v1/ledger/consistency?from=M&to=N, as served.")],
    public_key: Annotated[str, typer.Option("--public-key", help="The pinned key (base64, PEM or a file).")],
) -> None:
    """Offline: check that the signed tree of the second checkpoint extends the first's (RFC 6962 consistency):
    nothing the first checkpoint signed was changed or removed since."""
    from voucher_engine.ledger import checkpoints as cps
    from voucher_engine.ledger import merkle
    from voucher_engine.ledger import verify as verifier

    try:
        documents = [json.loads(path.read_text()) for path in (first, second, proof)]
        older, newer = (doc.get("checkpoint", doc) for doc in documents[:2])
        m, n = verifier.verify_consistency_offline(older, newer, documents[2], cps.parse_public_key(public_key))
    except (merkle.ProofError, cps.CheckpointError, ValueError, KeyError, AttributeError, OSError) as exc:
        typer.echo(f"FAILED: {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"OK: the signed tree of {n} transactions extends the signed tree of {m}: the first {m} are unchanged")


@app.command()
def bench(
    transactions: Annotated[
        int, typer.Option(help="How many transactions to post, sequence, verify and export.")
    ] = 1_000_000,
    batch: Annotated[int, typer.Option(help="Redemptions per posted micro-batch.")] = 500,
    data_dir: Annotated[
        Optional[Path],
        typer.Option("--data-dir", help="Embedded PostgreSQL data directory (default: a temporary one)."),
    ] = None,
) -> None:
    """Print figures: posting rate, sequencing rate, verify, inclusion proof and CSV export over N transactions.

    Uses DATABASE_URL's server if set (in a scratch database it creates and drops), else an embedded PostgreSQL.
    """
    from voucher_engine.ledger import bench as bench_module

    bench_module.main(transactions=transactions, batch=batch, data_dir=data_dir)
