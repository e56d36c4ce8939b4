"""The books check every reliability suite ends with, as SQL over the engine's tables (no service needed), so that
the crash suite (loadtest/crash.py) can run it against a database a killed service left behind."""

from __future__ import annotations

import asyncpg

BOOKS_CHECKS: dict[str, str] = {
    # Every transaction's debits equal its credits.
    "unbalanced transactions": "SELECT id FROM ledger_transactions WHERE (SELECT sum(a) FROM unnest(amounts_fen) AS a) <> 0",
    # Escrows and payouts in flight hold what they were given; only fiscal accounts go negative (by what they funded),
    # and a merchant's only by what refunds and clawbacks took back of money already paid out (a refund after a
    # payout run is netted by later runs, as a clawback is).
    "merchants below zero by more than refunds and clawbacks took back": """
        SELECT a.account, a.balance_fen FROM ledger_accounts a
        LEFT JOIN (SELECT u.account, -sum(u.amount) AS taken FROM ledger_transactions t,
                          unnest(t.accounts, t.amounts_fen) AS u(account, amount)
                   WHERE t.kind IN ('refund', 'clawback') AND u.account LIKE 'merchant:%' GROUP BY 1) c
               ON c.account = a.account
        WHERE a.kind = 'merchant' AND a.balance_fen < -coalesce(c.taken, 0)""",
    # Per merchant: settled + payout + merchant = what it was credited, less refunds and clawbacks.
    "merchants whose three accounts are not credited less refunds and clawbacks": """
        SELECT m.id, coalesce(b.held, 0) AS held, coalesce(f.net, 0) AS net FROM merchants m
        LEFT JOIN (SELECT split_part(account, ':', 2) AS merchant_id, sum(balance_fen) AS held FROM ledger_accounts
                   WHERE kind IN ('merchant', 'payout', 'settled') GROUP BY 1) b ON b.merchant_id = m.id
        LEFT JOIN (SELECT split_part(u.account, ':', 2) AS merchant_id, sum(u.amount) AS net
                   FROM ledger_transactions t, unnest(t.accounts, t.amounts_fen) AS u(account, amount)
                   WHERE t.kind IN ('redeem', 'refund', 'clawback') AND u.account LIKE 'merchant:%'
                   GROUP BY 1) f ON f.merchant_id = m.id
        WHERE coalesce(b.held, 0) <> coalesce(f.net, 0)""",
    # Each clawback is one clawback transaction of its amount, merchant to escrow; and the reverse.
    "clawbacks without their ledger transaction": """
        SELECT c.id FROM clawbacks c LEFT JOIN ledger_transactions t ON t.id = c.ledger_tx_id
        LEFT JOIN redemptions r ON r.campaign_id = c.campaign_id AND r.id = c.redemption_id
        WHERE t.id IS NULL OR t.kind <> 'clawback' OR t.refs->>'redemption_id' <> c.redemption_id
           OR t.accounts <> ARRAY['merchant:' || c.merchant_id, 'escrow:' || c.campaign_id]
           OR t.amounts_fen <> ARRAY[-c.amount_fen, c.amount_fen] OR r.clawed_back_fen <> c.amount_fen""",
    "clawback transactions without their clawback": """
        SELECT t.id FROM ledger_transactions t LEFT JOIN clawbacks c ON c.ledger_tx_id = t.id
        WHERE t.kind = 'clawback' AND c.id IS NULL""",
    # Each payout item is one payout transaction of its amount, and once confirmed one confirm or reversal of it.
    "payout items without their ledger transactions": """
        SELECT i.id FROM payout_items i
        LEFT JOIN ledger_transactions p ON p.id = i.ledger_tx_id
        LEFT JOIN ledger_transactions c ON c.id = i.confirm_tx_id
        WHERE p.id IS NULL OR p.kind <> 'payout' OR p.amounts_fen <> ARRAY[-i.amount_fen, i.amount_fen]
           OR p.accounts <> ARRAY['merchant:' || i.merchant_id, 'payout:' || i.merchant_id]
           OR (i.status = 'sent') <> (c.id IS NULL)
           OR (i.status = 'paid' AND (c.kind <> 'payout_confirm' OR c.amounts_fen <> ARRAY[-i.amount_fen, i.amount_fen]))
           OR (i.status = 'failed' AND (c.kind <> 'payout_reversal' OR c.amounts_fen <> ARRAY[-i.amount_fen, i.amount_fen]))""",
    "payout transactions without their item": """
        SELECT t.id FROM ledger_transactions t
        LEFT JOIN payout_items i ON t.id IN (i.ledger_tx_id, i.confirm_tx_id)
        WHERE t.kind IN ('payout', 'payout_confirm', 'payout_reversal') AND i.id IS NULL""",
    # payout:<m> holds exactly its items still at the bank, settled:<m> exactly its paid items.
    "payout and settled accounts that are not their items": """
        SELECT a.account, a.balance_fen, coalesce(i.amount, 0) FROM ledger_accounts a
        LEFT JOIN (SELECT 'payout:' || merchant_id AS account, sum(amount_fen) AS amount FROM payout_items
                   WHERE status = 'sent' GROUP BY 1
                   UNION ALL
                   SELECT 'settled:' || merchant_id, sum(amount_fen) FROM payout_items WHERE status = 'paid' GROUP BY 1
                  ) i ON i.account = a.account
        WHERE a.kind IN ('payout', 'settled') AND a.balance_fen <> coalesce(i.amount, 0)""",
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
        LEFT JOIN (SELECT campaign_id, spend_day, sum(subsidy_fen - subsidy_refunded_fen - clawed_back_fen) AS net
                   FROM redemptions
                   GROUP BY 1, 2) r ON r.campaign_id = d.campaign_id AND r.spend_day = d.day
        WHERE d.spent_fen <> coalesce(r.net, 0) OR d.spent_fen > d.cap_fen""",
    # A closed campaign's escrow is empty: everything unspent went back to the funders.
    "closed campaigns holding money": """
        SELECT c.id, a.balance_fen FROM campaigns c JOIN ledger_accounts a ON a.account = 'escrow:' || c.id
        WHERE c.status = 'closed' AND a.balance_fen <> 0""",
    # A campaign holds in escrow exactly funded - redeemed + refunded + clawed back - returned.
    "escrows that are not funded - redeemed + refunded + clawed back - returned": """
        SELECT a.account, a.balance_fen, coalesce(f.flow, 0) FROM ledger_accounts a
        LEFT JOIN (SELECT 'escrow:' || campaign_id AS account,
                          sum(CASE WHEN kind IN ('fund', 'refund', 'clawback') THEN amount ELSE -amount END) AS flow
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
