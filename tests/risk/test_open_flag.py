"""`risk.service.open_flag`, the interface every cause (the redemption batch, the window detector) opens flags
with: once per dedupe key, a `hold` outcome puts the merchant on payout hold, the webhook event is recorded."""

from __future__ import annotations

from risk_world import merchant

from voucher_engine.risk import service as risk


async def _open(service, *, events: list | None = None, **overrides):
    values = {
        "signal": "merchant_velocity",
        "outcome": "hold",
        "merchant_id": "rest-a",
        "campaign_id": None,
        "redemption_ids": [],
        "evidence": {"per_minute": 45, "limit": 30},
        "dedupe_key": "merchant_velocity:rest-a:2025-01-10T10:00",
    }
    values.update(overrides)
    async with service.state.engine.begin() as conn:
        opened = await risk.open_flag(conn, **values)
        if events is not None:  # read in the cause's own transaction, before the dispatcher fans it out
            raw = await risk.raw_of(conn)
            sql = "SELECT data FROM webhook_outbox WHERE type = 'risk.flag_opened' AND data->>'id' = $1"
            events.extend(await raw.fetch(sql, opened.flag.id))
        return opened


async def test_a_flag_opens_once_per_key_and_its_hold_is_recorded_as_the_flags(rw, service):
    events: list = []
    first = await _open(service, events=events)
    assert len(events) == 1  # the risk.flag_opened event, in the flag's transaction
    assert first.opened and first.flag.status == "open" and first.flag.hold_caused
    held = await merchant(rw, "rest-a")
    assert held["payout_hold"] is not None and first.flag.id in held["payout_hold"]["reason"]

    again = await _open(service, evidence={"per_minute": 50})
    assert not again.opened and again.flag.id == first.flag.id and again.flag.evidence["per_minute"] == 45

    # A second flag on a merchant already held did not cause the hold.
    other = await _open(service, dedupe_key="merchant_velocity:rest-a:2025-01-10T11:00")
    assert other.opened and not other.flag.hold_caused

    async with service.state.engine.connect() as conn:
        raw = await risk.raw_of(conn)
        holds = await raw.fetch("SELECT actor FROM payout_hold_events WHERE merchant_id = 'rest-a' ORDER BY id")
    assert [h["actor"] for h in holds] == [f"risk:{first.flag.id}", f"risk:{other.flag.id}"]


async def test_a_flag_outcome_holds_nothing_and_a_rolled_back_cause_leaves_no_flag(rw, service):
    opened = await _open(service, outcome="flag", merchant_id="rest-b", dedupe_key="k1")
    assert opened.opened and not opened.flag.hold_caused
    assert (await merchant(rw, "rest-b"))["payout_hold"] is None

    class Boom(Exception):
        pass

    try:
        async with service.state.engine.begin() as conn:
            await risk.open_flag(
                conn,
                signal="odd_hour",
                outcome="hold",
                merchant_id="rest-c",
                campaign_id=None,
                redemption_ids=[],
                evidence={},
                dedupe_key="k2",
            )
            raise Boom
    except Boom:
        pass
    assert (await merchant(rw, "rest-c"))["payout_hold"] is None
    again = await _open(service, signal="odd_hour", merchant_id="rest-c", dedupe_key="k2")
    assert again.opened
