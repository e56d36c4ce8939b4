"""The books check every reliability suite ends with, as SQL over the engine's tables (no service needed), so that
the crash suite (loadtest/crash.py) can run it against a database a killed service left behind."""

from __future__ import annotations

import asyncpg

BOOKS_CHECKS: dict[str, str] = {
    # Every transaction's debits equal its credits.
    "unbalanced transactions": "SELECT id FROM ledger_transactions WHERE (SELECT sum(a) FROM unnest(amounts_fen) AS a) <> 0",
    # Escrows and merchants hold what they were given; only fiscal accounts go negative (by what they funded).
    "negative escrow or merchant balances": "SELECT account, balance_fen FROM ledger_accounts WHERE kind IN ('escrow', 'merchant') AND balance_fen < 0",
    # Every stored balance is the sum of its postings.
    "balances that are not the sum of their postings": """
        SELECT a.account, a.balance_fen, coalesce(p.total, 0) AS postings
        FROM ledger_accounts a
        LEFT JOIN (SELECT u.account, sum(u.amount) AS total
                   FROM ledger_transactions t, unnest(t.accounts, t.amounts_fen) AS u(account, amount)
                   GROUP BY u.account) p ON p.account = a.account
        WHERE a.balance_fen <> coalesce(p.total, 0)""",
    # Money is neither made nor destroyed: all balances together are zero.
    "money made or destroyed": "SELECT sum(balance_fen) FROM ledger_accounts HAVING sum(balance_fen) <> 0",
    # Each redemption is one redeem transaction of its subsidy, escrow to the merchant; and the reverse.
    "redemptions without their ledger transaction": """
        SELECT r.id FROM redemptions r LEFT JOIN ledger_transactions t ON t.id = r.ledger_tx_id
        WHERE t.id IS NULL OR t.kind <> 'redeem' OR t.refs->>'redemption_id' <> r.id
           OR t.accounts <> ARRAY['escrow:' || r.campaign_id, 'merchant:' || r.merchant_id]
           OR t.amounts_fen <> ARRAY[-r.subsidy_fen, r.subsidy_fen]""",
    "redeem transactions without their redemption": """
        SELECT t.id FROM ledger_transactions t
        LEFT JOIN redemptions r ON r.campaign_id = t.campaign_id AND r.id = t.refs->>'redemption_id'
        WHERE t.kind = 'redeem' AND (r.id IS NULL OR r.ledger_tx_id <> t.id)""",
    # Each refund that clawed back subsidy is one refund transaction of it, merchant to escrow; and the reverse.
    "refunds without their ledger transaction": """
        SELECT f.refund_id FROM refunds f LEFT JOIN ledger_transactions t ON t.id = f.ledger_tx_id
        WHERE (f.subsidy_clawback_fen > 0) <> (t.id IS NOT NULL)
           OR (t.id IS NOT NULL AND (t.kind <> 'refund' OR t.amounts_fen[2] <> f.subsidy_clawback_fen))""",
    "refund transactions without their refund": """
        SELECT t.id FROM ledger_transactions t LEFT JOIN refunds f ON f.ledger_tx_id = t.id
        WHERE t.kind = 'refund' AND f.refund_id IS NULL""",
    # A redemption's running refund totals are the sums of its refunds.
    "redemption refund totals that are not the sum of the refunds": """
        SELECT r.id FROM redemptions r
        LEFT JOIN (SELECT campaign_id, redemption_id, sum(amount_fen) AS amount, sum(subsidy_clawback_fen) AS back
                   FROM refunds GROUP BY 1, 2) f ON f.campaign_id = r.campaign_id AND f.redemption_id = r.id
        WHERE r.refunded_fen <> coalesce(f.amount, 0) OR r.subsidy_refunded_fen <> coalesce(f.back, 0)""",
    # A voucher never holds less than nothing or more than its face value.
    "vouchers out of range": "SELECT id, balance_fen FROM vouchers WHERE balance_fen < 0 OR balance_fen > face_value_fen",
    # A capped day's spend is what its redemptions paid, less what refunds gave back; never above the cap.
    "daily spend that is not the redemptions'": """
        SELECT d.campaign_id, d.day, d.spent_fen, coalesce(r.net, 0) AS net FROM daily_spend d
        LEFT JOIN (SELECT campaign_id, spend_day, sum(subsidy_fen - subsidy_refunded_fen) AS net FROM redemptions
                   GROUP BY 1, 2) r ON r.campaign_id = d.campaign_id AND r.spend_day = d.day
        WHERE d.spent_fen <> coalesce(r.net, 0) OR d.spent_fen > d.cap_fen""",
    # A closed campaign's escrow is empty: everything unspent went back to the funders.
    "closed campaigns holding money": """
        SELECT c.id, a.balance_fen FROM campaigns c JOIN ledger_accounts a ON a.account = 'escrow:' || c.id
        WHERE c.status = 'closed' AND a.balance_fen <> 0""",
    # A campaign holds in escrow exactly funded - redeemed + refunded - returned.
    "escrows that are not funded - redeemed + refunded - returned": """
        SELECT a.account, a.balance_fen, coalesce(f.flow, 0) FROM ledger_accounts a
        LEFT JOIN (SELECT 'escrow:' || campaign_id AS account,
                          sum(CASE kind WHEN 'fund' THEN amount WHEN 'refund' THEN amount ELSE -amount END) AS flow
                   FROM (SELECT t.campaign_id, t.kind, abs(u.amount) AS amount
                         FROM ledger_transactions t, unnest(t.accounts, t.amounts_fen) AS u(account, amount)
                         WHERE u.account = 'escrow:' || t.campaign_id) x GROUP BY 1) f ON f.account = a.account
        WHERE a.kind = 'escrow' AND a.balance_fen <> coalesce(f.flow, 0)""",
}


async def books_problems(conn: asyncpg.Connection) -> dict[str, list]:
    """What is wrong with the books, by check (empty when they balance). `conn` is a plain asyncpg connection."""
    found: dict[str, list] = {}
    for name, sql in BOOKS_CHECKS.items():
        rows = await conn.fetch(sql)
        if rows:
            found[name] = [tuple(row) for row in rows[:10]]
    return found
