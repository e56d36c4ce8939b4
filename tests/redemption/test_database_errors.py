"""A database refusal on the redemption path is classified by the constraint that refused, never by its message.

Only the escrow's and the daily cap's CHECKs are answers to the till (INSUFFICIENT_FUNDS, DAILY_BUDGET_EXHAUSTED).
A voucher's balance out of its range or an unbalanced ledger transaction is a bug: INTERNAL, nothing changed, and
the batch logged. Both bugs are provoked here for real, by making the database's own constraint (same name, same
message) refuse the write the engine makes.
"""

from __future__ import annotations

import logging

import pytest
from redemption_world import holder

from voucher_engine.db.schema import metadata
from voucher_engine.ledger import service as ledger
from voucher_engine.redemption import repository

NOODLES = "xuhui-noodles"

# Each sabotage makes one constraint refuse every redemption, under its own name; its message mentions "balance".
SABOTAGE = {
    "ck_vouchers_balance_range": (
        "ALTER TABLE vouchers DROP CONSTRAINT ck_vouchers_balance_range",
        (
            "ALTER TABLE vouchers ADD CONSTRAINT ck_vouchers_balance_range "
            "CHECK (balance_fen >= 0 AND balance_fen <= face_value_fen AND status <> 'redeemed') NOT VALID"
        ),
    ),
    "ck_ledger_transactions_postings_balanced": (
        (
            "CREATE OR REPLACE FUNCTION ledger_postings_valid(accounts text[], amounts_fen bigint[]) RETURNS boolean "
            "LANGUAGE sql IMMUTABLE AS 'SELECT false'"
        ),
    ),
}


@pytest.mark.parametrize("constraint", sorted(SABOTAGE))
async def test_a_broken_invariant_is_internal_not_insufficient_funds(world, constraint, caplog):
    svc = world.service
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder()])
    code = await world.code(campaign)
    async with svc.state.engine.begin() as conn:
        escrow_before = await ledger.balance(conn, f"escrow:{campaign}")
        for statement in SABOTAGE[constraint]:
            await conn.exec_driver_sql(statement)

    with caplog.at_level(logging.ERROR, logger="voucher_engine.redemption"):
        response = await world.tills[NOODLES].redeem(code, 12000, pos_txn_id="till-7-0042")

    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "INTERNAL"
    # Nothing moved: the voucher is still spendable, the escrow untouched.
    [voucher] = await world.vouchers(campaign_id=campaign)
    assert voucher["status"] == "issued"
    async with svc.state.engine.begin() as conn:
        assert await ledger.balance(conn, f"escrow:{campaign}") == escrow_before
    # Logged, with the constraint and what finds the request again.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert constraint in logged
    assert "pos_txn_id=till-7-0042" in logged and f"campaign={campaign}" in logged


def test_the_constraints_classified_as_answers_exist_under_those_names():
    """If a migration renamed them, the classification would silently turn real refusals into INTERNAL."""
    names = {constraint.name for table in metadata.tables.values() for constraint in table.constraints}
    assert repository.DAILY_CAP_CHECK in names
    assert ledger.ESCROW_CHECK in names
