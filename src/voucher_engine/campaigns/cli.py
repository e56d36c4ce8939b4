"""`voucher-engine issue CAMPAIGN holders.csv`: a targeted issuance from a CSV file, with a progress bar.

It talks to the database directly, as `voucher-engine token create` does (the operator runs it on a machine that
can reach PostgreSQL: `DATABASE_URL`, or the embedded server under `--data-dir`). That path streams the file in
chunks straight into the COPY pipeline, so a list of a million holders never sits in memory and no 64 MiB request
body limit applies. The issuance is recorded like one made over the API (GET /v1/issuances/{id} shows it).

CSV: a header row naming `wallet_id`, optionally `id_hash` and `attestation` (a holder's compact JWS, instead of
attributes), and any holder attributes as further columns. Each
attribute value is read as the type the contract's holder conditions give that attribute (integer or money →
integer; text, region, date → string); empty cells are left out. Rows are checked like API holders; a malformed
row stops the issuance, whose single transaction then issues nothing, and the error names the line.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import itertools
import re
import sys
from collections.abc import AsyncIterator, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Optional, TextIO

import typer

from voucher_engine.errors import EngineError

app = typer.Typer(
    help="Issue vouchers from a CSV of holders.",
    add_completion=False,
    subcommand_metavar="",
    context_settings={"allow_interspersed_args": True},
)

INTEGER_TYPES = {"int", "integer", "money"}


def read_csv(path: Path, types: dict[str, str], chunk_size: int) -> Iterator[list[tuple]]:
    """Chunks of (wallet_id, id_hash, attributes) from the file, held to the same rules as API holders
    (schemas.parse_holder), checked inline because this loop runs a million times."""
    from voucher_engine.campaigns.schemas import (
        ID_HASH_PATTERN,
        MAX_ATTRIBUTE_VALUE_CHARS,
        MAX_ATTRIBUTES,
        WALLET_PATTERN,
    )

    wallet_ok = re.compile(WALLET_PATTERN).match
    id_hash_ok = re.compile(ID_HASH_PATTERN).match
    encoding = csv_encoding(path)
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv_rows(handle)
        header = next(reader, None)
        if not header or "wallet_id" not in header:
            raise EngineError("VALIDATION_ERROR", f"{path}: the first row must name the columns, with wallet_id")
        wallet_at = header.index("wallet_id")
        hash_at = header.index("id_hash") if "id_hash" in header else None
        # An `attestation` column carries each holder's compact JWS instead of attributes (see docs/attestations.md).
        token_at = header.index("attestation") if "attestation" in header else None
        columns = [
            (i, name, int if types.get(name, "text") in INTEGER_TYPES else str)
            for i, name in enumerate(header)
            if i not in (wallet_at, hash_at, token_at)
        ]
        if len(columns) > MAX_ATTRIBUTES:
            raise EngineError("VALIDATION_ERROR", f"{path}: at most {MAX_ATTRIBUTES} attribute columns")
        cells_of = (
            itemgetter(*[i for i, _, _ in columns])
            if len(columns) > 1
            else (lambda row, i=columns[0][0]: (row[i],))
            if columns
            else (lambda row: ())
        )
        # Holder lists repeat few combinations of attribute values: parse each once (bounded).
        parsed: dict[tuple, dict] = {}
        width = len(header)
        chunk: list[tuple] = []
        lines: list[int] = []
        for line_no, row in enumerate(reader, start=2):
            if len(row) != width:
                if not row:
                    continue
                raise EngineError("VALIDATION_ERROR", f"{path}: line {line_no} has {len(row)} cells, not {width}")
            cells = cells_of(row)
            attributes = parsed.get(cells)
            if attributes is None:
                try:
                    attributes = {name: convert(cell) for (_, name, convert), cell in zip(columns, cells) if cell != ""}
                except ValueError:
                    raise _bad_cell(path, line_no, columns, cells) from None
                if any(len(cell) > MAX_ATTRIBUTE_VALUE_CHARS for cell in cells):
                    raise EngineError(
                        "VALIDATION_ERROR",
                        f"{path}: line {line_no}: an attribute is longer than {MAX_ATTRIBUTE_VALUE_CHARS} characters",
                    )
                if len(parsed) < 100_000:
                    parsed[cells] = attributes
            evidence: dict | str = attributes
            if token_at is not None and row[token_at]:
                if attributes:
                    raise EngineError(
                        "VALIDATION_ERROR", f"{path}: line {line_no}: give attributes or an attestation, not both"
                    )
                evidence = row[token_at]
            chunk.append((row[wallet_at], (row[hash_at] or None) if hash_at is not None else None, evidence))
            lines.append(line_no)
            if len(chunk) == chunk_size:
                _check_ids(path, chunk, lines, wallet_ok, id_hash_ok)
                yield chunk
                chunk, lines = [], []
        if chunk:
            _check_ids(path, chunk, lines, wallet_ok, id_hash_ok)
            yield chunk


# Lines read at a time by csv_rows (whole lines: a block is at least one line, whatever its length).
CSV_BLOCK_CHARS = 1 << 20


def csv_rows(handle: TextIO) -> Iterator[list[str]]:
    """The rows csv.reader gives for a file opened with newline="", faster: a block of lines that holds no quote
    character (nor a NUL, which csv refuses) is split at its commas by str.split, where csv reads each character
    through its state machine. Attested lists have ~450-character rows, the whole row a cell without quotes: csv cost
    ~3 us a row more than split there (~0.3 s of the issuance's process for 100,000 holders). From the first block
    with a quote on, csv.reader reads the rest of the file (a quoted cell may hold a line break)."""
    while True:
        lines = handle.readlines(CSV_BLOCK_CHARS)
        if not lines:
            return
        block = "".join(lines)
        if '"' in block or "\x00" in block:
            yield from csv.reader(itertools.chain(lines, handle))
            return
        for line in lines:
            cells = line.rstrip("\r\n")
            yield cells.split(",") if cells else []  # csv.reader's row for an empty line is []


def csv_encoding(path: Path) -> str:
    """UTF-8 (a BOM, as Excel writes with "CSV UTF-8", is dropped) when the whole file decodes as UTF-8; otherwise
    GB18030, the superset of GBK that Excel and WPS write on Chinese Windows. The check streams the file once."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"


def _bad_cell(path: Path, line_no: int, columns: list, cells: tuple) -> EngineError:
    """Which column of the line holds what is not a whole number, and what to do."""
    for (_, name, convert), cell in zip(columns, cells):
        if cell == "":
            continue
        try:
            convert(cell)
        except ValueError:
            return EngineError(
                "VALIDATION_ERROR",
                f"{path}: line {line_no}, column {name!r}: {cell[:40]!r} is not a whole number"
                f" (the contract reads {name} as an integer); correct the cell or leave it empty",
            )
    return EngineError("VALIDATION_ERROR", f"{path}: line {line_no}: a cell is not a whole number")


# A whole chunk's wallets and id_hashes checked at once, by C-level passes over the joined values (lengths, then
# characters): a million calls of a pattern per column were a fifth of the command's time. Only when a chunk fails
# is it checked row by row, to name the line (and the row-by-row patterns, schemas.py's, stay the rule).
_ID_HASH_CHARS = re.compile(r"[A-Za-z0-9+/=_:.-]*")


def _check_ids(path: Path, chunk: list[tuple], lines: list[int], wallet_ok, id_hash_ok) -> None:
    wallets = [holder[0] for holder in chunk]
    hashes = [holder[1] for holder in chunk if holder[1] is not None]
    joined = "".join(wallets)
    if set(map(len, wallets)) == {16} and joined.isascii() and joined.isdigit():
        hash_lengths = set(map(len, hashes)) or {1}
        if 1 <= min(hash_lengths) and max(hash_lengths) <= 128 and _ID_HASH_CHARS.fullmatch("".join(hashes)):
            return
    for (wallet_id, id_hash, _), line_no in zip(chunk, lines):
        if not wallet_ok(wallet_id) or (id_hash is not None and not id_hash_ok(id_hash)):
            raise EngineError(
                "VALIDATION_ERROR",
                f"{path}: line {line_no}: wallet_id must be 16 digits and id_hash 1 to 128 of [A-Za-z0-9+/=_:.-]",
            )


def count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 1))
        if path.stat().st_size and handle.read(1) != b"\n":
            lines += 1
    return max(0, lines - 1)


async def issue_file(
    url: str, campaign_id: str, path: Path, *, show_progress: bool = True, chunk_size: int = 20_000
) -> dict:
    """Issue to every holder of the CSV; answers the issuance's result as GET /v1/issuances/{id} would."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from voucher_engine import clock
    from voucher_engine.campaigns import cache, ids, issuance, repository
    from voucher_engine.db import test_clock
    from voucher_engine.db.engine import create_engine

    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            # A database served with --test-clock keeps its business time there; follow it as the workers do
            # (production databases have no such row, and the offset stays zero).
            await test_clock.refresh(conn)
            row = await repository.get_campaign(conn, campaign_id)
            if row is None:
                raise EngineError("NOT_FOUND", f"No campaign {campaign_id!r}.")
            now = clock.now()
            issuance.check_issuable(row, "targeted", now)
            terms = cache.terms_from_row(row)
            total = count_rows(path)
            issuance_id = ids.new_issuance_id()
            await repository.insert_issuance(
                conn,
                {
                    "id": issuance_id,
                    "campaign_id": campaign_id,
                    "kind": "targeted",
                    "status": "running",
                    "total": total,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        types = cache.holder_types(terms.contract)
        # The bar goes to standard error: standard output carries only the result, as JSON.
        bar = Progress(
            TextColumn("[bold]issuing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            disable=not show_progress,
            transient=False,
            console=Console(stderr=True),
        )
        task = bar.add_task("issue", total=total, note="")

        async def progress(processed: int, issued: int, rejected: int) -> None:
            bar.update(task, completed=processed, note=f"issued {issued:,} rejected {rejected:,}")
            async with engine.begin() as conn:
                await repository.update_issuance(
                    conn,
                    issuance_id,
                    processed=processed,
                    issued=issued,
                    rejected_count=rejected,
                    updated_at=clock.now(),
                )

        async def chunks() -> AsyncIterator[list[tuple]]:
            for chunk in read_csv(path, types, chunk_size):
                yield chunk

        with bar:
            try:
                outcome = await issuance.run(
                    engine, campaign_id, issuance_id, kind="targeted", holders=chunks(), progress=progress
                )
            except BaseException as exc:
                async with engine.begin() as conn:
                    detail = exc.detail if isinstance(exc, EngineError) else type(exc).__name__
                    await repository.update_issuance(
                        conn,
                        issuance_id,
                        status="failed",
                        error=detail[:500],
                        updated_at=clock.now(),
                        finished_at=clock.now(),
                    )
                raise
        return {
            "issuance_id": issuance_id,
            "campaign_id": campaign_id,
            "total": total,
            "processed": outcome.processed,
            "issued": outcome.issued,
            "rejected_count": outcome.rejected_count,
            "rejected": outcome.rejected[:20],
        }
    finally:
        await engine.dispose()


@app.callback(invoke_without_command=True)
def issue(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="The campaign's id (cmp_...).")],
    holders: Annotated[
        Path,
        typer.Argument(
            metavar="HOLDERS_CSV",
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV with wallet_id, optional id_hash, attribute columns.",
        ),
    ],
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Where the embedded PostgreSQL lives.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Issue one voucher to each eligible holder of a CSV file (targeted campaigns), showing progress."""
    import orjson

    from voucher_engine.config import settings_for
    from voucher_engine.db.embedded import NoEngineData
    from voucher_engine.db.migrate import prepare_database

    try:
        url = prepare_database(settings_for(data_dir), existing=True)
    except NoEngineData as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        result = asyncio.run(issue_file(url, campaign_id, holders, show_progress=not quiet))
    except EngineError as exc:
        typer.echo(f"error: {exc.code}: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        typer.echo(
            f"error: {holders}: not readable as CSV text ({exc}); save it as 'CSV UTF-8' (or GB18030) and try again",
            err=True,
        )
        raise typer.Exit(2) from None
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
