"""Daily merchant statements: opening + lines = closing to the fen, day after day, as JSON and CSV, in China
time; the merchant's own signed GET /v1/pos/statement says the same; who may read them."""

from __future__ import annotations

import csv
import io

from settlement_world import SUBSIDY


async def _statement(sw, merchant_id: str, day: str, headers=None, fmt: str = "json"):
    answer = await sw.service.client.get(
        f"/v1/merchants/{merchant_id}/statement?date={day}&format={fmt}", headers=headers or sw.service.admin
    )
    return answer


async def test_statements_add_up_day_by_day(sw, service):
    await sw.set_clock("2025-01-10T09:00:00+08:00")
    _, vouchers = await sw.launch_dining(5)
    first = await sw.redeem("rest-a", vouchers[0])
    await sw.redeem("rest-a", vouchers[1])
    # 23:30 China time is 15:30 UTC, still the 10th in China: the line belongs to the 10th.
    await sw.set_clock("2025-01-10T23:30:00+08:00")
    third = await sw.redeem("rest-a", vouchers[2])
    await sw.set_clock("2025-01-11T08:00:00+08:00")
    run = await sw.run("2025-01-11T00:00:00+08:00")
    await sw.confirm(run["id"], [(run["items"][0]["id"], "failed")])
    await sw.clawback(first["id"])
    refund = await sw.tills["rest-a"].refund(third["id"], 12000)
    assert refund.status_code == 201
    await sw.redeem("rest-a", vouchers[3])
    await sw.set_clock("2025-01-12T10:00:00+08:00")

    day1 = (await _statement(sw, "rest-a", "2025-01-10")).json()
    assert day1["opening_fen"] == 0 and day1["closing_fen"] == 3 * SUBSIDY
    assert [line["kind"] for line in day1["lines"]] == ["redeem", "redeem", "redeem"]
    assert all(line["at"].endswith("+08:00") and line["at"].startswith("2025-01-10") for line in day1["lines"])
    assert day1["lines"][0]["redemption_id"] == first["id"] and day1["lines"][0]["campaign_id"]

    day2 = (await _statement(sw, "rest-a", "2025-01-11")).json()
    kinds = [(line["kind"], line["amount_fen"]) for line in day2["lines"]]
    assert kinds == [
        ("payout", -3 * SUBSIDY),
        ("payout_reversal", 3 * SUBSIDY),
        ("clawback", -SUBSIDY),
        ("refund", -SUBSIDY),
        ("redeem", SUBSIDY),
    ]
    assert day2["opening_fen"] == day1["closing_fen"]
    for found in (day1, day2):
        assert found["opening_fen"] + sum(line["amount_fen"] for line in found["lines"]) == found["closing_fen"]
    assert day2["closing_fen"] == await sw.balance("merchant:rest-a") == 2 * SUBSIDY
    day3 = (await _statement(sw, "rest-a", "2025-01-12")).json()
    assert day3["lines"] == [] and day3["opening_fen"] == day3["closing_fen"] == day2["closing_fen"]

    # CSV: the same figures, with opening and closing rows a spreadsheet can add up.
    answer = await _statement(sw, "rest-a", "2025-01-11", fmt="csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows[0]["kind"] == "opening" and rows[-1]["kind"] == "closing"
    assert int(rows[0]["amount_fen"]) + sum(int(r["amount_fen"]) for r in rows[1:-1]) == int(rows[-1]["amount_fen"])
    assert int(rows[-1]["amount_fen"]) == day2["closing_fen"]

    # The merchant's own till reads the same statement, signed.
    own = await sw.tills["rest-a"].send("GET", "/v1/pos/statement?date=2025-01-11")
    assert own.status_code == 200, own.text
    assert own.json() == day2
    own_csv = await sw.tills["rest-a"].send("GET", "/v1/pos/statement?date=2025-01-11&format=csv")
    assert own_csv.status_code == 200 and own_csv.text == answer.text


async def test_who_may_read_a_statement(sw, service):
    assert (await _statement(sw, "rest-a", "2025-01-10", headers=sw.auditor)).status_code == 200
    gov = await _statement(sw, "rest-a", "2025-01-10", headers=service.auth(sw.gov["310000"]))
    assert gov.status_code == 403 and gov.json()["code"] == "FORBIDDEN"
    bound = service.auth(await service.token("auditor", sw.issuers["310000"]))
    assert (await _statement(sw, "rest-a", "2025-01-10", headers=bound)).status_code == 404
    assert (await _statement(sw, "nobody", "2025-01-10")).status_code == 404
    bad = await _statement(sw, "rest-a", "2025-13-01")
    assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"
    unsigned = await service.client.get("/v1/pos/statement?date=2025-01-10")
    assert unsigned.status_code == 401
