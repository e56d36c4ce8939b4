"""Payout runs over HTTP against a real PostgreSQL: a full cycle with every account's balance asserted."""

from __future__ import annotations

import csv
import io

from settlement_world import SUBSIDY, assert_verified, books_problems

BUDGET_FEN = 1_000_000_000  # ¥10,000,000


async def _items_by_merchant(run: dict) -> dict[str, dict]:
    return {item["merchant_id"]: item for item in run["items"]}


async def test_a_full_payout_cycle(sw, service):
    client, admin = service.client, service.admin
    await sw.set_clock("2025-01-10T10:00:00+08:00")
    campaign_id, vouchers = await sw.launch_dining(6)
    await sw.redeem("rest-a", vouchers[0])
    await sw.redeem("rest-a", vouchers[1])
    await sw.redeem("rest-b", vouchers[2])
    await sw.redeem("rest-c", vouchers[3])
    await sw.redeem("rest-h", vouchers[4])
    held = await client.post("/v1/merchants/rest-h/hold", json={"reason": "documents under review"}, headers=admin)
    assert held.status_code == 200, held.text
    assert held.json()["payout_hold"]["reason"] == "documents under review"
    # After the cutoff: rest-b earns 2000 more, which the first run must not pay.
    await sw.set_clock("2025-01-10T11:30:00+08:00")
    await sw.redeem("rest-b", vouchers[5])

    await sw.set_clock("2025-01-10T12:00:00+08:00")
    run1 = await sw.run("2025-01-10T11:00:00+08:00")
    items = await _items_by_merchant(run1)
    assert {m: i["amount_fen"] for m, i in items.items()} == {
        "rest-a": 2 * SUBSIDY,
        "rest-b": SUBSIDY,
        "rest-c": SUBSIDY,
    }
    assert run1["total_fen"] == 4 * SUBSIDY and run1["item_count"] == 3
    assert all(i["status"] == "sent" and i["settlement_wallet"] == "0000000000000001" for i in items.values())

    # The bank file: one row per item, the header of API.md.
    answer = await client.get(f"/v1/payout-runs/{run1['id']}/file", headers=admin)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == ["item_id", "merchant_id", "settlement_wallet", "amount_fen", "reference"]
    assert sorted((r["merchant_id"], int(r["amount_fen"])) for r in rows) == [
        ("rest-a", 4000),
        ("rest-b", 2000),
        ("rest-c", 2000),
    ]
    assert {r["item_id"] for r in rows} == {i["id"] for i in items.values()}

    assert await sw.balances("rest-a") == {"merchant": 0, "payout": 4000, "settled": 0}
    assert await sw.balances("rest-b") == {"merchant": 2000, "payout": 2000, "settled": 0}
    assert await sw.balances("rest-h") == {"merchant": 2000, "payout": 0, "settled": 0}

    # The bank: rest-a paid, rest-b failed, rest-c not yet answered.
    confirmed = await sw.confirm(run1["id"], [(items["rest-a"]["id"], "paid"), (items["rest-b"]["id"], "failed")])
    assert [i["status"] for i in confirmed["items"]] == ["paid", "failed"]
    assert await sw.balances("rest-a") == {"merchant": 0, "payout": 0, "settled": 4000}
    assert await sw.balances("rest-b") == {"merchant": 4000, "payout": 0, "settled": 0}
    assert await sw.balances("rest-c") == {"merchant": 0, "payout": 2000, "settled": 0}
    assert await sw.balances("rest-h") == {"merchant": 2000, "payout": 0, "settled": 0}

    # Idempotent per item; the other answer for a confirmed item is refused and changes nothing.
    again = await sw.confirm(run1["id"], [(items["rest-a"]["id"], "paid")])
    assert again["items"][0]["confirm_tx_id"] == confirmed["items"][0]["confirm_tx_id"]
    refused = await sw.confirm(
        run1["id"], [(items["rest-c"]["id"], "paid"), (items["rest-a"]["id"], "failed")], expect=409
    )
    assert refused["code"] == "INVALID_STATE"
    assert await sw.balances("rest-a") == {"merchant": 0, "payout": 0, "settled": 4000}
    assert await sw.balances("rest-c") == {"merchant": 0, "payout": 2000, "settled": 0}

    # Released, rest-h is paid by the second run; rest-b gets its failed payout and what came after the first
    # cutoff; rest-a (nothing new) and rest-c (its payout still at the bank) get no item.
    released = await client.post("/v1/merchants/rest-h/release", headers=admin)
    assert released.status_code == 200 and released.json()["payout_hold"] is None
    await sw.set_clock("2025-01-10T13:00:00+08:00")
    run2 = await sw.run("2025-01-10T12:30:00+08:00")
    items2 = await _items_by_merchant(run2)
    assert {m: i["amount_fen"] for m, i in items2.items()} == {"rest-b": 4000, "rest-h": 2000}
    await sw.confirm(run2["id"], [(items2["rest-b"]["id"], "paid"), (items2["rest-h"]["id"], "paid")])
    await sw.confirm(run1["id"], [(items["rest-c"]["id"], "paid")])

    # A third run finds nothing to pay.
    run3 = await sw.run("2025-01-10T13:00:00+08:00")
    assert run3["items"] == [] and run3["total_fen"] == 0

    assert await sw.balances("rest-a") == {"merchant": 0, "payout": 0, "settled": 4000}
    assert await sw.balances("rest-b") == {"merchant": 0, "payout": 0, "settled": 4000}
    assert await sw.balances("rest-c") == {"merchant": 0, "payout": 0, "settled": 2000}
    assert await sw.balances("rest-h") == {"merchant": 0, "payout": 0, "settled": 2000}
    assert await sw.balance(f"escrow:{campaign_id}") == BUDGET_FEN - 6 * SUBSIDY
    assert await sw.balance(f"fiscal:{sw.issuers['310000']}") == -BUDGET_FEN
    await assert_verified(service)


async def test_a_refund_after_the_payout_is_netted_by_later_runs(sw, service):
    """A refund of money already paid out takes the subsidy back from the merchant's account, below zero; the next
    run pays nothing until later redemptions have made up for it, then only the difference."""
    await sw.set_clock("2025-01-10T10:00:00+08:00")
    _, vouchers = await sw.launch_dining(4)
    first = await sw.redeem("rest-a", vouchers[0])
    await sw.redeem("rest-a", vouchers[1])
    await sw.set_clock("2025-01-10T11:00:00+08:00")
    run1 = await sw.run("2025-01-10T11:00:00+08:00")
    assert [(i["merchant_id"], i["amount_fen"]) for i in run1["items"]] == [("rest-a", 2 * SUBSIDY)]

    refund = await sw.tills["rest-a"].refund(first["id"], 12000)
    assert refund.status_code == 201, refund.text
    assert await sw.balances("rest-a") == {"merchant": -SUBSIDY, "payout": 2 * SUBSIDY, "settled": 0}
    assert await books_problems(service) == {}  # below zero by what a refund took back is what the books allow
    await sw.redeem("rest-a", vouchers[2])
    await sw.set_clock("2025-01-10T12:00:00+08:00")
    run2 = await sw.run("2025-01-10T12:00:00+08:00")
    assert run2["items"] == [], "a merchant at zero after netting the refund is owed nothing"

    await sw.redeem("rest-a", vouchers[3])
    await sw.set_clock("2025-01-10T13:00:00+08:00")
    run3 = await sw.run("2025-01-10T13:00:00+08:00")
    assert [(i["merchant_id"], i["amount_fen"]) for i in run3["items"]] == [("rest-a", SUBSIDY)]
    assert await sw.balances("rest-a") == {"merchant": 0, "payout": 3 * SUBSIDY, "settled": 0}
    await assert_verified(service)
