"""Attestations (可用不可见, "usable but invisible"): eligibility without personal data.

A public-data operator (an *attester*) registers its Ed25519 public keys; for each holder it evaluates a campaign's
published holder conditions on the data it holds and signs a compact JWS (EdDSA, RFC 8037) saying so
(`"eligible": true`), or carrying the attributes for the engine to evaluate and drop. The engine checks the
signature, the attester, the times, the campaign, the wallet, the id_hash and that the jti is spent only once per
campaign; it keeps the decision, the attestation's SHA-256 and jti (`attestation_uses`), never an attribute.

Modules: `jws.py` (compact JWS parse, verify and sign: pure), `checks.py` (an attestation's checks and the
per-campaign holder gate: pure), `repository.py` (SQL), `service.py` (attesters, the per-process registry, audit
verification), `endpoints.py` (`/v1/attesters`, `/v1/attestations/verify`), `reference.py` and `cli.py` (the
reference attester: `voucher-engine attester keygen | sign`).
"""
