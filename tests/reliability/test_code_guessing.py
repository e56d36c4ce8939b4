"""Voucher-code guessing and enumeration: forged, mangled and enumerated codes all answer VOUCHER_UNKNOWN alike, a
key that keeps guessing is refused with RATE_LIMITED (429, Retry-After) within a handful of tries — whatever code it
then shows, so the refusal is no oracle — the count is shared through PostgreSQL (a second service process over the
same database refuses the key at its first guess), and a legitimate till beside it is unaffected."""

from __future__ import annotations

import base64
import secrets

import pytest
from reliability_helpers import WALLET, Till, holder, start_service

from voucher_engine.campaigns.codes import make_code
from voucher_engine.redemption.dispatch import GUARD_KEY

LIMIT = 12


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text
    return response.json()


def _tighten(service, limit: int = LIMIT) -> None:
    guard = service.state.extras[GUARD_KEY]
    guard.limit = limit


async def _second_key(world, merchant_id: str):
    key = await world.service.pos_key(merchant_id)
    return Till(world.service, merchant_id, key["key_id"], key["secret"])


@pytest.fixture
async def dining(world):
    await world.set_clock("2025-01-15T12:00:00+08:00")
    holders = [holder(WALLET)] + [holder(f"64000000000000{i:02d}") for i in range(5)]
    campaign = await world.launch("shanghai-dining-2025.contract", holders)
    return campaign


def _forgeries(secret: bytes, campaign: str, genuine: str) -> list[str]:
    """Codes an attacker might try: random ones, the genuine code with its MAC flipped, neighbouring voucher ids
    (enumeration), a genuine-looking code made under another server's secret, and junk."""
    raw = base64.urlsafe_b64decode(genuine[2:] + "==")
    flipped = raw[:-1] + bytes([raw[-1] ^ 1])
    neighbour_ids = [f"vch_{n:032x}" for n in range(1, 4)]
    return [
        "V1" + base64.urlsafe_b64encode(secrets.token_bytes(40)).decode().rstrip("="),
        "V1" + base64.urlsafe_b64encode(flipped).decode().rstrip("="),
        *[make_code(secrets.token_bytes(32), campaign, vid) for vid in neighbour_ids],
        make_code(secrets.token_bytes(32), campaign, "vch_" + raw[8:24].hex()),
        "V1" + "A" * 54,
        "' OR 1=1 --",
    ]


async def test_every_forgery_is_the_same_unknown_and_guessing_is_rate_limited(world, dining):
    service = world.service
    _tighten(service)
    campaign = dining
    genuine = await world.code(campaign)
    guesser = world.tills["xuhui-noodles"]
    forgeries = _forgeries(service.state.server_secret, campaign, genuine)
    answers = []
    for code in forgeries:
        answers.append(await guesser.redeem(code, 12000))
    bodies = [(a.status_code, a.json()["code"], a.json()["detail"]) for a in answers]
    assert len(set(bodies)) == 1 and bodies[0][:2] == (404, "VOUCHER_UNKNOWN"), bodies  # indistinguishable
    # Keep guessing (quotes count too): refused at the LIMIT-th unknown code at the latest.
    refused_at = None
    for attempt in range(len(forgeries), LIMIT + 2):
        response = await guesser.quote("V1" + base64.urlsafe_b64encode(secrets.token_bytes(40)).decode()[:54], 12000)
        if response.status_code == 429:
            refused_at = attempt + 1
            break
        _problem(response, 404, "VOUCHER_UNKNOWN")
    assert refused_at is not None and refused_at <= LIMIT, refused_at
    # Refused whatever it shows now, even a genuine code: no oracle, and no database work for it.
    for code in (genuine, forgeries[0]):
        problem = _problem(await guesser.redeem(code, 12000), 429, "RATE_LIMITED")
        assert problem["retry_after_s"] >= 1
    limited = await guesser.redeem(genuine, 12000)
    assert int(limited.headers["retry-after"]) == limited.json()["retry_after_s"] > 1  # the time left, not a default
    vouchers = await world.vouchers(WALLET, campaign)
    assert vouchers[0]["status"] == "issued"  # nothing was redeemed while the key was refused
    # A legitimate till beside it (another key) quotes and redeems the genuine code at once.
    honest = world.tills["xuhui-noodles-2"] = await _second_key(world, "xuhui-noodles")
    assert (await honest.quote(genuine, 12000)).json()["eligible"] is True
    assert (await honest.redeem(genuine, 12000)).status_code == 201
    async with service.state.engine.connect() as conn:
        counted = await conn.exec_driver_sql("SELECT key_id, sum(failures) FROM code_guess_failures GROUP BY 1")
        counted = dict(counted.all())
    assert counted == {guesser.key_id: LIMIT}  # only the failure path wrote, and only for the guesser


async def test_a_legitimate_till_with_occasional_misreads_is_never_limited(world, dining):
    service = world.service
    _tighten(service)
    campaign = dining
    till = world.tills["xuhui-noodles"]
    wallets = [WALLET] + [f"64000000000000{i:02d}" for i in range(5)]
    for n, wallet in enumerate(wallets):
        if n % 2 == 0:  # a damaged QR code now and then
            _problem(await till.redeem("V1" + "B" * 54, 12000, wallet=wallet), 404, "VOUCHER_UNKNOWN")
        code = await world.code(campaign, wallet)
        response = await till.redeem(code, 12000, wallet=wallet)
        assert response.status_code == 201, response.text
    async with service.state.engine.connect() as conn:
        counted = (await conn.exec_driver_sql("SELECT sum(failures) FROM code_guess_failures")).scalar()
    assert counted == 3  # three misreads counted; the six successes wrote nothing


async def test_the_count_is_shared_by_every_worker(world, dining, database_url, tmp_path):
    """A second service process over the same database (another worker or replica) refuses the key at its first
    unknown code, because the count it reads back is the shared one."""
    service = world.service
    _tighten(service)
    guesser = world.tills["xuhui-noodles"]
    for _ in range(LIMIT - 1):
        _problem(await guesser.redeem("V1" + "C" * 54, 12000), 404, "VOUCHER_UNKNOWN")
    other, close = await start_service(database_url, service.settings.data_dir, test_clock=True)
    try:
        _tighten(other)
        same_key_elsewhere = Till(other, guesser.merchant_id, guesser.key_id, guesser.secret)
        _problem(await same_key_elsewhere.redeem("V1" + "D" * 54, 12000), 429, "RATE_LIMITED")
        _problem(await same_key_elsewhere.redeem(await world.code(dining), 12000), 429, "RATE_LIMITED")
    finally:
        await close()
