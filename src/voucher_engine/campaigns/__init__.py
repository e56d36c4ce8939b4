"""Campaigns for governments (消费券活动): lifecycle, funding, issuance, lottery, first-come claims, expiry, close.

What the redemption path relies on (kept stable; see docs/campaigns.md):

- `codes.parse_code(server_secret, code) -> (campaign_id, voucher_id)`, or `EngineError("VOUCHER_UNKNOWN")` for any
  malformed or forged code, in microseconds and without the database. The holder is the row's `wallet_id`.
- The `vouchers` table (db/schema/campaigns.py), primary key `(campaign_id, id)`: `status` moves by conditional
  UPDATEs (`issued -> redeemed | expired | revoked`, and back to `issued` on a full refund within the window),
  `balance_fen` is spent down by balance vouchers, `valid_from <= t < valid_until`, `version` / `updated_at` bumped.
- `expiry.expire_voucher(conn, campaign_id, voucher_id, now)` (lazy, one voucher) and
  `expiry.expire_due(conn, campaign_id | None, now, limit)` (batches).
- `cache.terms_from_row(row)` for a campaign's compiled contract and fixed terms (immutable, cached per process);
  `repository.get_campaign(conn, id)` for its status; `service.campaign_totals(conn, id)` for its totals.
"""
