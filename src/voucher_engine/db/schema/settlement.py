"""Tables of merchant settlement (商户结算): payout runs, their items, and the history of payout holds.

A run pays each merchant (not on hold) what its `merchant:<m>` account holds of money credited before the run's
cutoff; each item is one `payout` ledger transaction, written with the item. A bank's confirmation moves the item
on (`payout_confirm`, to `settled:<m>`) or back (`payout_reversal`, to `merchant:<m>`), once.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import metadata

TS = sa.DateTime(timezone=True)

payout_runs = sa.Table(
    "payout_runs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("cutoff", TS, nullable=False),
    sa.Column("total_fen", sa.BigInteger, nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.CheckConstraint("total_fen >= 0 AND item_count >= 0", name="not_negative"),
)

payout_items = sa.Table(
    "payout_items",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("settlement_wallet", sa.Text, nullable=False),
    sa.Column("amount_fen", sa.BigInteger, nullable=False),
    # sent -> paid | failed, once.
    sa.Column("status", sa.Text, nullable=False),
    # What the bank file carries for the bank to echo back (the item id, as the bank's reference field).
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("ledger_tx_id", sa.Text, nullable=False),
    sa.Column("confirm_tx_id", sa.Text, nullable=True),
    sa.Column("bank_reference", sa.Text, nullable=True),
    sa.Column("confirmed_at", TS, nullable=True),
    sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
    sa.CheckConstraint("status IN ('sent', 'paid', 'failed')", name="status_known"),
    sa.CheckConstraint("(status = 'sent') = (confirm_tx_id IS NULL)", name="confirmed_once"),
    sa.Index("uq_payout_items_run_id_merchant_id", "run_id", "merchant_id", unique=True),
    sa.Index("ix_payout_items_merchant_id", "merchant_id"),
)

payout_hold_events = sa.Table(
    "payout_hold_events",
    metadata,
    # Every hold and release, with who made it: the merchant row shows only the current hold.
    sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column("merchant_id", sa.Text, nullable=False, index=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.CheckConstraint("action IN ('hold', 'release')", name="action_known"),
)
