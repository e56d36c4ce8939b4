"""Money governance, part 1: co-funders' consent, appropriations, token use

- `campaign_funders.approval` (`own` | `pending` | `approved` | `declined`) with the latest decision's token and
  time. Campaigns made before this migration keep working as they did: the issuer's own share is `own`, every
  other share counts as `approved` (they were funded, or could be, without consent).
- `campaign_funder_decisions`: every approval and decline, append-only.
- `issuers.appropriation_fen`: the optional ceiling on what an issuer has committed at once.
- `api_tokens.last_used_at`.

Revision ID: 0014_money_governance
Revises: 0013_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_money_governance"
down_revision = "0013_webhooks"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

APPEND_ONLY = """
CREATE FUNCTION funder_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'campaign_funder_decisions is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$
"""


def upgrade() -> None:
    op.add_column("campaign_funders", sa.Column("approval", sa.Text, nullable=True))
    op.add_column("campaign_funders", sa.Column("decided_by", sa.Text, nullable=True))
    op.add_column("campaign_funders", sa.Column("decided_at", TS, nullable=True))
    op.execute(
        "UPDATE campaign_funders f SET approval = CASE WHEN f.issuer_id = c.issuer_id THEN 'own' ELSE 'approved' END"
        " FROM campaigns c WHERE c.id = f.campaign_id"
    )
    op.alter_column("campaign_funders", "approval", nullable=False)
    op.create_check_constraint(
        op.f("ck_campaign_funders_approval_known"),
        "campaign_funders",
        "approval IN ('own', 'pending', 'approved', 'declined')",
    )
    op.create_table(
        "campaign_funder_decisions",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("issuer_id", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("token_id", sa.Text, nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.CheckConstraint(
            "decision IN ('approved', 'declined')", name=op.f("ck_campaign_funder_decisions_decision_known")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_funder_decisions_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_funder_decisions")),
    )
    op.create_index(
        op.f("ix_campaign_funder_decisions_campaign_id"), "campaign_funder_decisions", ["campaign_id"], unique=False
    )
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER campaign_funder_decisions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE"
        " ON campaign_funder_decisions FOR EACH STATEMENT EXECUTE FUNCTION funder_decisions_append_only()"
    )
    op.add_column("issuers", sa.Column("appropriation_fen", sa.BigInteger, nullable=True))
    op.create_check_constraint(
        op.f("ck_issuers_appropriation_not_negative"),
        "issuers",
        "appropriation_fen IS NULL OR appropriation_fen >= 0",
    )
    op.add_column("api_tokens", sa.Column("last_used_at", TS, nullable=True))


def downgrade() -> None:
    op.drop_column("api_tokens", "last_used_at")
    op.drop_constraint(op.f("ck_issuers_appropriation_not_negative"), "issuers", type_="check")
    op.drop_column("issuers", "appropriation_fen")
    op.drop_table("campaign_funder_decisions")
    op.execute("DROP FUNCTION funder_decisions_append_only()")
    op.drop_constraint(op.f("ck_campaign_funders_approval_known"), "campaign_funders", type_="check")
    op.drop_column("campaign_funders", "decided_at")
    op.drop_column("campaign_funders", "decided_by")
    op.drop_column("campaign_funders", "approval")
