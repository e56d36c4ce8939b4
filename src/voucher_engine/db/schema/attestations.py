"""Tables of attestations (可用不可见): the registered attesters' public keys and the attestations spent.

- `attesters`: one row per Ed25519 public key of a public-data operator. Rows are never deleted: a retired key
  (`retired_at` set) signs nothing new that the engine accepts, but its earlier attestations stay verifiable for
  audit. Rotation is a new row under the same `name`, then the old row retired.
- `attestation_uses`: what the engine keeps of each attestation it decided on, instead of the holder's attributes:
  the eligibility decision, the attestation's SHA-256 and its `jti`. The primary key makes a `jti` single use per
  campaign. No foreign keys (as on `vouchers`): a per-row check would slow a COPY of 100,000 uses, and every writer
  goes through attestations/ and campaigns/, which check both ends first.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import metadata

TS = sa.DateTime(timezone=True)

attesters = sa.Table(
    "attesters",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, index=True),
    sa.Column("public_key", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("retired_at", TS, nullable=True),
    sa.CheckConstraint("octet_length(public_key) = 32", name="ed25519_key_length"),
)

attestation_uses = sa.Table(
    "attestation_uses",
    metadata,
    sa.Column("campaign_id", sa.Text, primary_key=True),
    sa.Column("jti", sa.Text, primary_key=True),
    sa.Column("attestation_sha256", sa.LargeBinary, nullable=False),
    sa.Column("attester_id", sa.Text, nullable=False),
    sa.Column("wallet_id", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    # The issuance that decided it; NULL for a first-come claim.
    sa.Column("issuance_id", sa.Text, nullable=True),
    sa.Column("used_at", TS, nullable=False),
    sa.CheckConstraint("decision IN ('eligible', 'not_eligible')", name="decision_known"),
    sa.CheckConstraint("octet_length(attestation_sha256) = 32", name="sha256_length"),
)
