"""Daily merchant statements (对账单): one China calendar day of a merchant's `merchant:<m>` account.

opening = every move before the day, lines = the day's moves, closing = opening + lines; and, read in the same
snapshot, closing + every move after the day = the account's stored balance. Both equations are checked before the
statement is answered, so a statement that would not add up to the fen is never given out.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine.clock import CHINA_TZ
from voucher_engine.db.raw import driver
from voucher_engine.errors import EngineError
from voucher_engine.merchants import repository as merchant_repository
from voucher_engine.settlement import repository
from voucher_engine.settlement.schemas import Statement, StatementLine

MAX_LINES = 100_000
CSV_COLUMNS = ("ledger_tx_id", "kind", "at", "amount_fen", "redemption_id", "campaign_id", "payout_item_id")


def parse_day(text: str) -> date:
    try:
        day = date.fromisoformat(text) if len(text) == 10 else date.fromisoformat("invalid")
    except ValueError:
        raise EngineError("VALIDATION_ERROR", f"date must be YYYY-MM-DD, not {text[:20]!r}") from None
    if not 2 <= day.year <= 9998:  # the day's bounds, a day either side, must be datetimes
        raise EngineError("VALIDATION_ERROR", f"date {text} is out of range")
    return day


async def statement(engine: AsyncEngine, merchant_id: str, day: date) -> Statement:
    """The merchant's statement for `day` (China time), read in one repeatable-read snapshot."""
    start = datetime.combine(day, time(0), CHINA_TZ)
    end = datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)
    account = f"merchant:{merchant_id}"
    async with engine.connect() as conn:
        if await merchant_repository.get(conn, merchant_id) is None:
            raise EngineError("NOT_FOUND", f"no merchant {merchant_id!r}")
        await conn.rollback()  # the look-up's implicit transaction; the snapshot below is a transaction of its own
        raw = await driver(conn)
        async with raw.transaction(isolation="repeatable_read", readonly=True):
            rows, balance = await repository.account_moves(raw, account, start, end)
    opening = sum(row["amount_fen"] for row in rows if row["before"])
    after = sum(row["amount_fen"] for row in rows if row["after"])
    day_rows = [row for row in rows if not row["before"] and not row["after"]]
    if len(day_rows) > MAX_LINES:
        raise EngineError("VALIDATION_ERROR", f"the day holds {len(day_rows)} moves, more than {MAX_LINES}")
    lines = [
        StatementLine(
            ledger_tx_id=row["id"],
            kind=row["kind"],
            at=row["at"].astimezone(CHINA_TZ),
            amount_fen=row["amount_fen"],
            redemption_id=row["redemption_id"],
            campaign_id=row["campaign_id"],
            payout_item_id=row["payout_item_id"],
        )
        for row in day_rows
    ]
    closing = opening + sum(line.amount_fen for line in lines)
    # The pair of checks: the statement adds up, and it agrees with the balance the ledger keeps.
    if balance is not None and closing + after != balance:
        raise EngineError("INTERNAL", f"statement of {account} does not add up to its balance")
    return Statement(
        merchant_id=merchant_id,
        date=day.isoformat(),
        account=account,
        opening_fen=opening,
        closing_fen=closing,
        lines=lines,
    )


def as_csv(found: Statement) -> str:
    """The statement as CSV: a header, one row per line, then `opening` and `closing` rows (amount in the fourth
    column), so that a spreadsheet can check opening + lines = closing."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["", "opening", f"{found.date}T00:00:00+08:00", found.opening_fen, "", "", ""])
    for line in found.lines:
        writer.writerow(
            [
                line.ledger_tx_id,
                line.kind,
                line.at.isoformat(),
                line.amount_fen,
                line.redemption_id or "",
                line.campaign_id or "",
                line.payout_item_id or "",
            ]
        )
    next_day = (date.fromisoformat(found.date) + timedelta(days=1)).isoformat()
    writer.writerow(["", "closing", f"{next_day}T00:00:00+08:00", found.closing_fen, "", "", ""])
    return out.getvalue()
