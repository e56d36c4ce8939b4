"""Expiry: lazily for one voucher, in batches for a campaign, and by the per-worker sweep under its lock."""

from __future__ import annotations

import sqlalchemy as sa
from campaign_helpers import make_gov, policy, set_clock, wallet

from voucher_engine import clock
from voucher_engine.campaigns import expiry


async def _statuses(service, campaign_id: str) -> dict[str, int]:
    async with service.state.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT status, count(*) FROM vouchers WHERE campaign_id = :c GROUP BY status"),
                {"c": campaign_id},
            )
        ).all()
    return dict(rows)


async def test_relative_windows_expire_by_due_time(service):
    await set_clock(service, "2025-05-01T12:00:00+08:00")
    suzhou = await make_gov(service, "320500", register=("320505",))
    source = policy("suzhou-ecny-red-envelope").replace("distribution lottery", "distribution targeted")
    campaign = await suzhou.active(source)
    await suzhou.issue(campaign["id"], [{"wallet_id": wallet(n)} for n in range(1, 4)])
    await set_clock(service, "2025-05-05T12:00:00+08:00")
    await suzhou.issue(campaign["id"], [{"wallet_id": wallet(n)} for n in range(4, 6)])
    # Day 8 for the first three (issued May 1), day 4 for the last two.
    await set_clock(service, "2025-05-08T12:30:00+08:00")
    async with service.state.engine.begin() as conn:
        assert await expiry.expire_due(conn, campaign["id"], clock.now(), limit=2) == 2
        assert await expiry.expire_due(conn, campaign["id"], clock.now(), limit=10) == 1
        assert await expiry.expire_due(conn, None, clock.now(), limit=10) == 0
    assert await _statuses(service, campaign["id"]) == {"expired": 3, "issued": 2}
    listed = (await suzhou.get(f"/v1/wallets/{wallet(4)}/vouchers")).json()["items"]
    assert listed[0]["status"] == "issued"
    await set_clock(service, "2025-05-13T12:00:00+08:00")
    # The wallet view shows the truth before any sweep has run ...
    assert (await suzhou.get(f"/v1/wallets/{wallet(4)}/vouchers")).json()["items"][0]["status"] == "expired"
    voucher_id = listed[0]["id"]
    async with service.state.engine.begin() as conn:
        # ... the lazy form expires exactly one voucher ...
        assert await expiry.expire_voucher(conn, campaign["id"], voucher_id, clock.now()) is True
        assert await expiry.expire_voucher(conn, campaign["id"], voucher_id, clock.now()) is False
    # ... and the sweep does the rest.
    assert await expiry.sweep_once(service.state.engine) == 1
    assert await _statuses(service, campaign["id"]) == {"expired": 5}


async def test_only_one_worker_sweeps_at_a_time(service):
    async with service.state.engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": expiry.SWEEP_LOCK_KEY})
        try:
            assert await expiry.sweep_once(service.state.engine) == 0
        finally:
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": expiry.SWEEP_LOCK_KEY})


async def test_the_sweep_expires_a_fixed_window_campaign_once_its_window_ends(service):
    from campaign_helpers import ADULT, dining

    await set_clock(service, "2025-01-10T10:00:00+08:00")
    shanghai = await make_gov(service, "310000")
    campaign = await shanghai.active(dining())
    await shanghai.issue(campaign["id"], [{"wallet_id": wallet(n), "attributes": ADULT} for n in range(1, 4)])
    assert await expiry.sweep_once(service.state.engine) == 0
    await set_clock(service, "2025-01-31T23:58:00+08:00")
    assert await expiry.sweep_once(service.state.engine) == 0
    await set_clock(service, "2025-02-01T00:00:01+08:00")
    assert await expiry.sweep_once(service.state.engine) == 3
    assert await _statuses(service, campaign["id"]) == {"expired": 3}
    assert (await shanghai.campaign(campaign["id"]))["totals"]["vouchers_expired"] == 3
