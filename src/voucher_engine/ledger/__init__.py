"""The audit ledger (账本): double-entry postings in integer fen, a hash chain and an RFC 6962 Merkle tree over them,
signed checkpoints, inclusion and consistency proofs, reconciliation, and a verifier that trusts none of it.

`service` is the interface for the money path; `verify` is what auditors run; see docs/ledger.md.
"""
