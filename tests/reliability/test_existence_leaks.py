"""Another issuer's things answer exactly as things that do not exist: the same status, code and words (apart from
the id the caller sent, echoed back). And voucher ids say nothing about one another."""

from __future__ import annotations

import pytest
from reliability_helpers import WALLET, holder

from voucher_engine.campaigns import ids

NOW = "2025-01-15T12:00:00+08:00"


def _answer(response, asked: str) -> tuple[int, dict]:
    document = response.json()
    return response.status_code, {**document, "detail": document["detail"].replace(asked, "<id>")}


@pytest.fixture
async def shanghai(world):
    """Shanghai's campaign with one redeemed voucher, sequenced: (fund tx id, redeem tx id, voucher id, campaign)."""
    svc = world.service
    await world.set_clock(NOW)
    campaign = await world.launch("shanghai-dining-2025.contract", [holder(WALLET)])
    [voucher] = await world.vouchers(campaign_id=campaign)
    paid = await world.tills["xuhui-noodles"].redeem(voucher["code"], 12000)
    assert paid.status_code == 201, paid.text
    signed = await svc.client.post("/v1/ledger/checkpoints", headers=svc.admin)
    assert signed.status_code == 201, signed.text
    detail = await svc.client.get(f"/v1/campaigns/{campaign}", headers=svc.auth(world.gov["310000"]))
    return detail.json()["fund_tx_id"], paid.json()["ledger_tx_id"], voucher["id"], campaign


@pytest.mark.parametrize("caller", ["gov_suzhou", "auditor_suzhou"])
async def test_another_issuers_ledger_answers_like_nothing_at_all(world, shanghai, caller):
    svc = world.service
    fund_tx, redeem_tx, voucher_id, campaign = shanghai
    if caller == "gov_suzhou":
        headers = svc.auth(world.gov["320500"])
    else:
        headers = svc.auth(await svc.token("auditor", "iss_320500"))
    # Unknown ids of the same shapes as the real ones.
    unknown_tx = fund_tx[:-6] + ("000000" if not fund_tx.endswith("000000") else "111111")
    unknown_voucher = ids.new_voucher_id()
    unknown_campaign = ids.new_campaign_id()
    pairs = [
        ("/v1/ledger/transactions/{}", fund_tx, unknown_tx),
        ("/v1/ledger/transactions/{}", redeem_tx, unknown_tx),
        ("/v1/ledger/transactions/{}/proof", redeem_tx, unknown_tx),
        ("/v1/ledger/vouchers/{}/trace", voucher_id, unknown_voucher),
        ("/v1/ledger/accounts/escrow:{}", campaign, unknown_campaign),
        ("/v1/ledger/campaigns/{}/reconciliation", campaign, unknown_campaign),
    ]
    for path, theirs, nothing in pairs:
        foreign = await svc.client.get(path.format(theirs), headers=headers)
        missing = await svc.client.get(path.format(nothing), headers=headers)
        assert foreign.status_code == 404, (path, foreign.text)
        assert _answer(foreign, theirs) == _answer(missing, nothing), path
    # The owner does see them (the ids are right).
    owner = svc.auth(world.gov["310000"])
    for path, theirs, _ in pairs:
        assert (await svc.client.get(path.format(theirs), headers=owner)).status_code == 200, path


def test_voucher_ids_of_one_block_are_not_guessable_from_one_another():
    """Before, a block's ids were one random stem and a counter at the end: a known id gave away its neighbours."""
    block = ids.voucher_id_block(1000)
    assert block == sorted(block) and all(len(v) == 36 for v in block)
    tails = [v[-ids.VOUCHER_ID_NOISE_CHARS :] for v in block]
    assert len(set(tails)) == 1000  # each id has randomness of its own
    for known, neighbour in zip(block, block[1:]):
        counter = int(known[16:22], 16)
        guess = f"{known[:16]}{counter + 1:06x}{known[22:]}"  # the neighbour, if the tail were shared
        assert guess != neighbour
