"""Targeted issuance and the lottery: holder conditions, per-holder limits across wallets, quantity, jobs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from campaign_helpers import ADULT, dining, policy, wallet

from voucher_engine.campaigns import codes


async def test_targeted_issues_one_each_to_eligible_holders_within_limits(service, shanghai):
    campaign = await shanghai.active(dining(quantity="4"))
    holders = [
        {"wallet_id": wallet(1), "id_hash": "person-a", "attributes": ADULT},
        {"wallet_id": wallet(2), "id_hash": "person-a", "attributes": ADULT},  # same person, other wallet
        {"wallet_id": wallet(3), "attributes": {"age": 17, "residence_region": "310104"}},  # too young
        {"wallet_id": wallet(4), "attributes": {"age": 40, "residence_region": "320505"}},  # not in Shanghai
        {"wallet_id": wallet(5), "attributes": ADULT},
        {"wallet_id": wallet(5), "attributes": ADULT},  # same wallet again
        {"wallet_id": wallet(6), "attributes": ADULT},
        {"wallet_id": wallet(7), "attributes": ADULT},
        {"wallet_id": wallet(8), "attributes": ADULT},  # quantity reached
    ]
    result = await shanghai.issue(campaign["id"], holders)
    assert result["issued"] == 4 and result["status"] == "done"
    assert [{"wallet_id": r["wallet_id"], "code": r["code"]} for r in result["rejected"]] == [
        {"wallet_id": wallet(2), "code": "HOLDER_LIMIT"},
        {"wallet_id": wallet(3), "code": "NOT_ELIGIBLE"},
        {"wallet_id": wallet(4), "code": "NOT_ELIGIBLE"},
        {"wallet_id": wallet(5), "code": "HOLDER_LIMIT"},
        {"wallet_id": wallet(8), "code": "SOLD_OUT"},
    ]
    # A second list is held to the same limits, counting what the first issued.
    again = await shanghai.issue(campaign["id"], [{"wallet_id": wallet(9), "id_hash": "person-a", "attributes": ADULT}])
    assert again["issued"] == 0 and again["rejected"] == [{"wallet_id": wallet(9), "code": "HOLDER_LIMIT"}]
    totals = (await shanghai.campaign(campaign["id"]))["totals"]
    assert totals["vouchers_issued"] == 4 and totals["issued_fen"] == 4 * 2000
    listed = (await shanghai.get(f"/v1/wallets/{wallet(1)}/vouchers")).json()["items"]
    assert len(listed) == 1
    voucher = listed[0]
    assert voucher["status"] == "issued" and voucher["campaign_id"] == campaign["id"]
    assert voucher["valid_from"].startswith("2025-01-01T00:00:00+08:00") or voucher["valid_from"].startswith(
        "2024-12-31T16:00:00"
    )
    assert voucher["terms"]["kind"] == "threshold"
    assert codes.parse_code(service.state.server_secret, voucher["code"]) == (campaign["id"], voucher["id"])
    issuance = (await shanghai.get(f"/v1/issuances/{result['issuance_id']}")).json()
    assert issuance["issued"] == 4 and issuance["rejected_count"] == 5
    import sqlalchemy as sa

    async with service.state.engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.text(
                    "SELECT id_hash, holder_key, issuance_id, face_value_fen, balance_fen, version, status,"
                    " issued_at = updated_at AS same FROM vouchers WHERE wallet_id = :w"
                ),
                {"w": wallet(1)},
            )
        ).one()
    # No attributes are kept (issue 18): the voucher is the decision.
    assert tuple(stored) == ("person-a", "h:person-a", result["issuance_id"], 2000, 2000, 1, "issued", True)


async def test_per_holder_limit_above_one(shanghai):
    campaign = await shanghai.active(policy("appliance-trade-in-2025"))  # up to 3 per person
    holders = [{"wallet_id": wallet(n), "id_hash": "family-1"} for n in range(1, 6)]
    result = await shanghai.issue(campaign["id"], holders)
    assert result["issued"] == 3 and [r["code"] for r in result["rejected"]] == ["HOLDER_LIMIT"] * 2


async def test_issuance_refusals(service, shanghai):
    draft = await shanghai.create(dining())
    refused = await shanghai.post(f"/v1/campaigns/{draft['id']}/issuances", {"holders": []})
    assert refused.status_code == 409 and refused.json()["code"] == "INVALID_STATE"
    campaign = await shanghai.active(dining())
    for body in (
        {},
        {"holders": [{"wallet_id": "12"}]},
        {"holders": "x"},
        {"holders": [], "lottery": {}},
        {"lottery": {"applicants": [], "seed": "zz"}},
        [1],
    ):
        response = await shanghai.post(f"/v1/campaigns/{campaign['id']}/issuances", body)
        assert response.status_code == 422 and response.json()["code"] == "VALIDATION_ERROR", body
    wrong_kind = await shanghai.post(
        f"/v1/campaigns/{campaign['id']}/issuances", {"lottery": {"applicants": [], "seed": "ab" * 16}}
    )
    assert wrong_kind.status_code == 422
    broken = await service.client.post(
        f"/v1/campaigns/{campaign['id']}/issuances", content=b"{nope", headers=shanghai.headers
    )
    assert broken.status_code == 422 and broken.json()["code"] == "VALIDATION_ERROR"


async def test_relative_validity_counts_from_issue(service, shanghai):
    from campaign_helpers import make_gov, set_clock

    await set_clock(service, "2025-05-01T12:00:00+08:00")
    suzhou = await make_gov(service, "320500", register=("320505",))
    source = policy("suzhou-ecny-red-envelope").replace("distribution lottery", "distribution targeted")
    campaign = await suzhou.active(source)
    await suzhou.issue(campaign["id"], [{"wallet_id": wallet(1)}])
    voucher = (await suzhou.get(f"/v1/wallets/{wallet(1)}/vouchers")).json()["items"][0]
    from datetime import datetime, timedelta

    valid_from = datetime.fromisoformat(voucher["valid_from"])
    valid_until = datetime.fromisoformat(voucher["valid_until"])
    assert valid_until - valid_from == timedelta(days=7)
    assert abs(valid_from - datetime.fromisoformat("2025-05-01T12:00:00+08:00")) < timedelta(seconds=5)
    assert voucher["face_value_fen"] == voucher["balance_fen"] == 20000


def recompute_lottery(
    applicants: list[dict], seed_hex: str, slots: int, limit: int, prior: dict, excluded: set[str]
) -> tuple[str, list[str]]:
    """An independent implementation of lottery-v1 from its published description (no engine code)."""
    keys = sorted({f"{a['wallet_id']}:{a.get('id_hash') or ''}" for a in applicants}, key=lambda k: k.encode())
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    seed = bytes.fromhex(seed_hex)
    ranked = sorted(
        (k for k in keys if k not in excluded), key=lambda k: (hmac.new(seed, k.encode(), hashlib.sha256).digest(), k)
    )
    held: dict[str, int] = dict(prior)
    winners = []
    for key in ranked:
        wallet_id, _, id_hash = key.partition(":")
        holder = f"h:{id_hash}" if id_hash else f"w:{wallet_id}"
        if held.get(holder, 0) >= limit:
            continue
        held[holder] = held.get(holder, 0) + 1
        winners.append(key)
        if len(winners) == slots:
            break
    return digest, winners


async def test_a_lottery_anyone_can_recompute(service):
    from campaign_helpers import make_gov, set_clock

    await set_clock(service, "2025-05-01T12:00:00+08:00")
    suzhou = await make_gov(service, "320500", register=("320505",))
    source = (
        policy("suzhou-ecny-red-envelope")
        .replace("quantity 10,000", "quantity 50")
        .replace("budget ¥2,000,000", "budget ¥10,000")
    )
    campaign = await suzhou.active(source)
    applicants = [{"wallet_id": wallet(n), "attributes": {}} for n in range(1, 301)]
    applicants += [{"wallet_id": wallet(1000 + n), "id_hash": "twins"} for n in range(3)]  # one person, 3 wallets
    seed = "5eed" * 16
    response = await suzhou.post(
        f"/v1/campaigns/{campaign['id']}/issuances",
        {"lottery": {"applicants": list(reversed(applicants)), "seed": seed}},
    )
    assert response.status_code == 201, response.text
    result = response.json()
    published = result["lottery"]
    assert result["issued"] == 50 and published["slots"] == 50 and published["seed"] == seed
    digest, winners = recompute_lottery(
        applicants,
        seed,
        published["slots"],
        published["per_holder_limit"],
        published["prior_vouchers"],
        {e["key"] for e in published["excluded"]},
    )
    assert published["applicants_sha256"] == digest
    assert published["winners"] == winners
    assert published["winners_sha256"] == hashlib.sha256("\n".join(winners).encode()).hexdigest()
    won_wallets = set()
    for key in winners:
        items = (await suzhou.get(f"/v1/wallets/{key.split(':')[0]}/vouchers")).json()["items"]
        assert len(items) == 1
        won_wallets.add(key.split(":")[0])
    assert len(won_wallets) == 50
    assert sum(1 for key in winners if key.endswith(":twins")) <= 1
    # The same list and seed drawn again elsewhere gives the same winners; another seed, others.
    _, again = recompute_lottery(applicants, seed, 50, 1, {}, set())
    assert again == winners
    _, other = recompute_lottery(applicants, "00" * 32, 50, 1, {}, set())
    assert other != winners


async def test_large_issuances_run_as_a_job_with_progress(service, shanghai):
    campaign = await shanghai.active(dining())
    holders = [{"wallet_id": wallet(n), "attributes": ADULT} for n in range(1, 100_001)]
    holders[7]["attributes"] = {"age": 12, "residence_region": "310104"}
    response = await shanghai.post(f"/v1/campaigns/{campaign['id']}/issuances", {"holders": holders})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "running" and job["total"] == 100_000
    seen_progress = []
    for _ in range(600):
        state = (await shanghai.get(f"/v1/issuances/{job['issuance_id']}")).json()
        seen_progress.append(state["processed"])
        if state["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert state["status"] == "done", state
    assert state["issued"] == 99_999
    assert [(r["wallet_id"], r["code"]) for r in state["rejected"]] == [(wallet(8), "NOT_ELIGIBLE")]
    assert state["processed"] == 100_000
    assert seen_progress == sorted(seen_progress)
    totals = (await shanghai.campaign(campaign["id"]))["totals"]
    assert totals["vouchers_issued"] == 99_999


async def test_hostile_holders_are_refused_whole(shanghai):
    campaign = await shanghai.active(dining())
    path = f"/v1/campaigns/{campaign['id']}/issuances"
    for holder in (
        {"wallet_id": wallet(1), "attributes": {"age": {"nested": 1}}},
        {"wallet_id": wallet(1), "attributes": {"note": "x" * 300}},
        {"wallet_id": wallet(1), "attributes": {f"a{i}": i for i in range(40)}},
        {"wallet_id": wallet(1), "id_hash": "has spaces"},
        {"wallet_id": wallet(1), "extra": 1},
        {"wallet_id": 1234567890123456},
    ):
        response = await shanghai.post(path, {"holders": [{"wallet_id": wallet(2)}, holder]})
        assert response.status_code == 422 and response.json()["code"] == "VALIDATION_ERROR", holder
        assert "holders[1]" in response.json()["detail"]
    claims_path = f"/v1/campaigns/{campaign['id']}/claims"
    nested = await shanghai.post(claims_path, {"wallet_id": wallet(1), "attributes": {"a": [1]}})
    assert nested.status_code == 422
    assert (await shanghai.campaign(campaign["id"]))["totals"]["vouchers_issued"] == 0
