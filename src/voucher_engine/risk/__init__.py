"""Risk control (反欺诈): flags for review with their evidence, the holds they put on, and the decisions on them.

The rules themselves are data in the contract language (`voucher_engine.contracts.risk`: signals, default rules,
the pure per-redemption judging), so that a contract can tighten them and the redemption path can judge them
without importing this room. Here: `service` opens and lists flags (`open_flag`, in the caller's transaction),
`decisions` clears or confirms them, `repository` holds the SQL, `endpoints` the HTTP routes. See docs/risk.md.
"""
