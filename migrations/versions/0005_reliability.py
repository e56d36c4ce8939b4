"""reliability: counters of failed voucher-code lookups per POS key and minute (the code-guessing rate limit)

Revision ID: 0005_reliability
Revises: 0004_redemption
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_reliability"
down_revision = "0004_redemption"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_guess_failures",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.CheckConstraint("failures > 0", name=op.f("ck_code_guess_failures_failures_positive")),
        sa.PrimaryKeyConstraint("key_id", "minute", name=op.f("pk_code_guess_failures")),
    )
    op.create_index(op.f("ix_code_guess_failures_minute"), "code_guess_failures", ["minute"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_code_guess_failures_minute"), table_name="code_guess_failures")
    op.drop_table("code_guess_failures")
