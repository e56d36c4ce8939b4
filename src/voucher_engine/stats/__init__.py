"""Campaign statistics (统计): rollups of the ledger's redemptions, refunds and clawbacks, kept off the till's path.

`service.rollup_round` tails the sequenced ledger by a durable cursor; `GET /v1/campaigns/{id}/stats` reads the
rollups only. See docs/console.md ("Statistics") for the staleness bound and the benchmark.
"""
