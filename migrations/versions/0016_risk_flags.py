"""Risk control: flags for review and the decisions made on them

- `risk_flags`: one row per flag (signal, outcome, merchant, campaign, redemptions, evidence, status), with a
  unique `dedupe_key` so that a detector running again, or a retried batch, never opens the same flag twice, and
  `hold_caused` (opening it put the merchant on payout hold).
- `risk_decisions`: clear or confirm, once per flag (unique `flag_id`), with who and when; append-only.

Revision ID: 0016_risk_flags
Revises: 0015_claims_token_check
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0016_risk_flags"
down_revision = "0015_claims_token_check"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

APPEND_ONLY = """
CREATE FUNCTION risk_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'risk_decisions is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END $$
"""


def upgrade() -> None:
    op.create_table(
        "risk_flags",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("signal", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=True),
        sa.Column("redemption_ids", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("evidence", pg.JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.Text, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("hold_caused", sa.Boolean, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.CheckConstraint("outcome IN ('flag', 'hold', 'refuse')", name=op.f("ck_risk_flags_outcome_known")),
        sa.CheckConstraint("status IN ('open', 'cleared', 'confirmed')", name=op.f("ck_risk_flags_status_known")),
        sa.CheckConstraint("(status = 'open') = (decided_at IS NULL)", name=op.f("ck_risk_flags_decided_once")),
        sa.CheckConstraint("cardinality(redemption_ids) <= 10000", name=op.f("ck_risk_flags_redemptions_bounded")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_flags")),
        sa.UniqueConstraint("seq", name=op.f("uq_risk_flags_seq")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_risk_flags_dedupe_key")),
    )
    op.create_index("ix_risk_flags_campaign_id_seq", "risk_flags", ["campaign_id", "seq"])
    op.create_index("ix_risk_flags_merchant_id_seq", "risk_flags", ["merchant_id", "seq"])
    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("flag_id", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("token_id", sa.Text, nullable=False),
        sa.Column("issuer_id", sa.Text, nullable=True),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("clawback_ids", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("released_hold", sa.Boolean, nullable=False),
        sa.CheckConstraint("decision IN ('clear', 'confirm')", name=op.f("ck_risk_decisions_decision_known")),
        sa.ForeignKeyConstraint(["flag_id"], ["risk_flags.id"], name=op.f("fk_risk_decisions_flag_id_risk_flags")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_decisions")),
        sa.UniqueConstraint("flag_id", name=op.f("uq_risk_decisions_flag_id")),
    )
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER risk_decisions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE"
        " ON risk_decisions FOR EACH STATEMENT EXECUTE FUNCTION risk_decisions_append_only()"
    )


def downgrade() -> None:
    op.drop_table("risk_decisions")
    op.execute("DROP FUNCTION risk_decisions_append_only()")
    op.drop_index("ix_risk_flags_merchant_id_seq", table_name="risk_flags")
    op.drop_index("ix_risk_flags_campaign_id_seq", table_name="risk_flags")
    op.drop_table("risk_flags")
