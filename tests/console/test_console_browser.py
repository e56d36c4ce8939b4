"""The console in real headless Chromium (Debian's, driven by Playwright) against a served instance with data.

Every test records every request the page makes (none may leave for another host) and every console message and
page error (none may be an error). Screenshots go to a temporary folder, or to `VE_CONSOLE_SCREENSHOTS` (the docs
use `docs/console/`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from pathlib import Path

import httpx
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.async_api import expect
from redemption_world import CONTRACTS

SHOTS = os.environ.get("VE_CONSOLE_SCREENSHOTS")
VIEWPORT = {"width": 1360, "height": 900}


def fen(text: str) -> int:
    """¥1,234.56 → 123456 (exact: the digits, never a float)."""
    match = re.search(r"(-?)¥([\d,]+)\.(\d\d)", text)
    assert match, text
    sign, whole, cents = match.groups()
    value = int(whole.replace(",", "")) * 100 + int(cents)
    return -value if sign else value


async def drawn(page, chart: str) -> list[int]:
    """The amounts a chart has drawn as text (its SVG labels written ¥x.yy; axis ticks, without fen, are left out)."""
    texts = await page.locator(f"#chart-{chart} svg text").all_text_contents()
    return [fen(text) for line in texts for text in re.findall(r"-?¥[\d,]+\.\d\d", line)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(chromium_path):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        yield browser
        await browser.close()


class Visit:
    """A page in a fresh browser context, with every request and console message recorded."""

    def __init__(self, site, page, context):
        self.site, self.page, self.context = site, page, context
        self.requests: list[str] = []
        self.problems: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message) -> None:
        # Chromium logs every 4xx answer to fetch() as a console error. The editor's check is answered 422
        # CONTRACT_INVALID whenever the text has an error (API.md), which is what the editor is for: that one
        # network line is expected. Anything else — a script error, a CSP violation, another refusal — is not.
        if message.type != "error":
            return
        expected = message.text.startswith("Failed to load resource: the server responded with a status of 422")
        if expected and message.location.get("url", "").endswith("/v1/contracts/check"):
            return
        self.problems.append(f"{message.text} at {message.location}")

    async def sign_in(self, who: str, role: str | None = None) -> None:
        """Sign in with the site's token `who` (a role, or "cofunder": the Xuhui government, role gov)."""
        await self.page.goto(f"{self.site.base_url}/console")
        await self.page.fill("#token", self.site.tokens[who])
        await self.page.click("#signin button[type=submit]")
        await self.page.wait_for_selector(f"#who[data-role={role or who}]")

    async def nav(self) -> list[str]:
        return [await a.inner_text() for a in await self.page.locator("#nav a").all()]

    async def shot(self, name: str) -> None:
        folder = Path(SHOTS) if SHOTS else Path(os.environ.get("TMPDIR", "/tmp")) / "ve-console-shots"
        folder.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    def api(self, role: str, path: str) -> dict:
        answer = httpx.get(self.site.base_url + path, headers={"Authorization": f"Bearer {self.site.tokens[role]}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def check_clean(self) -> None:
        foreign = [url for url in self.requests if not url.startswith(self.site.base_url + "/")]
        assert not foreign, f"requests to other hosts: {foreign}"
        assert not self.problems, f"console errors: {self.problems}"
        assert not any(self.site.tokens[role] in url for url in self.requests for role in self.site.tokens)


@pytest_asyncio.fixture(loop_scope="session")
async def visit(site, browser):
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    v = Visit(site, page, context)
    yield v
    await context.close()
    v.check_clean()


async def test_government_sees_its_campaigns_and_the_charts_add_up(visit):
    page, site = visit.page, visit.site
    await visit.sign_in("gov")
    await page.wait_for_selector(f"a[data-campaign='{site.dining}']")
    assert await page.locator("a[data-campaign]").count() == 2
    assert await visit.nav() == ["活动", "合约编辑器", "风险核查"]
    # Its co-funded draft waits for the Xuhui government's consent (given in a test below).
    assert await page.locator(f"[data-cofunders='{site.elderly}']").inner_text() == "1 个出资方待审批"
    await visit.shot("gov-campaigns")

    await page.click(f"a[data-campaign='{site.dining}']")
    for chart in ("burn-down", "region", "mcc", "leverage", "fund-flow"):
        await page.wait_for_selector(f"#chart-{chart}[data-chart-ready] svg")
    campaign = visit.api("gov", f"/v1/campaigns/{site.dining}")
    stats = visit.api("gov", f"/v1/campaigns/{site.dining}/stats")
    totals = campaign["totals"]

    async def figure(name: str) -> str:
        return await page.locator(f"[data-figure='{name}']").first.inner_text()

    assert fen(await figure("redeemed")) == totals["redeemed_fen"]
    assert fen(await figure("refunded")) == totals["refunded_fen"]
    assert fen(await figure("outstanding")) == totals["outstanding_fen"]
    assert (await figure("leverage")).strip().endswith(stats["leverage"]["ratio"])
    # The burn-down's readout and its bars: each day's net spend drawn, summing to the ledger's figures.
    burn = await figure("burn-down-total")
    amounts = [fen(x) for x in re.findall(r"-?¥[\d,]+\.\d\d", burn)]
    assert amounts[0] == sum(b["redeemed_fen"] for b in stats["buckets"]) == totals["redeemed_fen"]
    assert amounts[1] == totals["refunded_fen"]
    assert amounts[2] == totals["funded_fen"] - totals["redeemed_fen"] + totals["refunded_fen"]
    daily = [b["redeemed_fen"] - b["refunded_fen"] - b["clawed_back_fen"] for b in stats["buckets"]]
    assert sorted(await drawn(page, "burn-down")) == sorted(daily)
    # Region and category bars: each bar's label is the API's figure, and the readouts add up to the ledger's.
    for chart, rows in (("region", stats["by_region"]), ("mcc", stats["by_mcc"])):
        assert sorted(await drawn(page, chart)) == sorted(r["redeemed_fen"] for r in rows)
        assert fen(await figure(f"{chart}-total")) == totals["redeemed_fen"]
    flow = await drawn(page, "fund-flow")
    assert totals["funded_fen"] in flow and totals["refunded_fen"] in flow and totals["redeemed_fen"] in flow
    assert totals["outstanding_fen"] in flow
    await visit.shot("gov-campaign")

    await page.click("#lang")
    await page.wait_for_selector("text=Burn-down by day")
    await visit.shot("gov-campaign-en")
    await page.click("#lang")
    await page.wait_for_selector("text=资金消耗（按日）")


BROKEN_LINE = 12  # of the dining contract, below: "distribution targetted"


async def test_editor_marks_an_error_at_its_line_and_explains_a_payment(visit):
    page, site = visit.page, visit.site
    await visit.sign_in("gov")
    await page.click("a[data-nav=editor]")
    await page.wait_for_selector("#check-state[data-state=ok]")
    source = (CONTRACTS / "shanghai-dining-2025.contract").read_text().splitlines()
    assert source[BROKEN_LINE - 1] == "distribution targeted"
    source[BROKEN_LINE - 1] = "distribution targetted"
    await page.fill("#source", "\n".join(source))
    await page.wait_for_selector("#check-state[data-state=invalid]")
    answer = httpx.post(
        site.base_url + "/v1/contracts/check",
        json={"source": "\n".join(source)},
        headers={"Authorization": f"Bearer {site.tokens['gov']}"},
    ).json()
    assert [e["line"] for e in answer["errors"]] == [BROKEN_LINE]
    assert await page.locator("#gutter div.bad").all_inner_texts() == [str(BROKEN_LINE)]
    listed = page.locator("#diagnostics li")
    assert await listed.count() == 1
    assert await listed.get_attribute("data-line") == str(BROKEN_LINE)
    assert f"第 {BROKEN_LINE} 行，第 {answer['errors'][0]['column']} 列" in await listed.inner_text()
    await visit.shot("gov-editor-error")

    source[BROKEN_LINE - 1] = "distribution targeted"
    await page.fill("#source", "\n".join(source))
    await page.wait_for_selector("#check-state[data-state=ok]")
    assert await page.locator("#gutter div.bad").count() == 0
    await page.fill("#sample-at", "2025-01-15T12:00:00+08:00")
    await page.fill("#sample-amount", "99.99")
    await page.click("#explain")
    refused = page.locator("#sample-result")
    await refused.locator("table").wait_for()
    assert "RULE_NOT_SATISFIED" in await refused.inner_text()
    explained = httpx.post(
        site.base_url + "/v1/contracts/explain",
        json={
            "source": "\n".join(source),
            "payment": {
                "merchant": {"mcc": "5812", "region_code": "310104", "tags": []},
                "at": "2025-01-15T12:00:00+08:00",
                "order_amount_fen": 9999,
            },
            "holder": {"age": 30, "residence_region": "310104"},
        },
        headers={"Authorization": f"Bearer {site.tokens['gov']}"},
    ).json()
    assert explained["code"] == "RULE_NOT_SATISFIED" and explained["explain"], explained
    for failed in explained["explain"]:
        assert f"第 {failed['line']} 行，第 {failed['column']} 列" in await refused.inner_text()
    await page.fill("#sample-amount", "120.00")
    await page.click("#explain")
    await page.wait_for_selector("#sample-result .notice.ok")
    assert "¥20.00" in await page.locator("#sample-result").inner_text()
    await visit.shot("gov-editor")
    await page.click("#create")
    await page.wait_for_selector("[data-status=draft]")
    assert await page.locator("h1").first.inner_text() != ""


async def test_editor_shows_the_checkers_warnings_as_warnings(visit):
    """Issue 14 item 9: `merchant.region = 310000` is accepted with a warning ("did you mean `within`?"), which the
    editor shows as a warning, with or without errors beside it."""
    page = visit.page
    await visit.sign_in("gov")
    await page.click("a[data-nav=editor]")
    await page.wait_for_selector("#check-state[data-state=ok]")
    source = (CONTRACTS / "shanghai-dining-2025.contract").read_text()
    source = source.replace("merchant.region within 310000", "merchant.region = 310000")
    await page.fill("#source", source)
    warned = page.locator("#diagnostics li.warning")
    await warned.wait_for()
    assert "merchant.region within 310000" in await warned.inner_text()
    assert "警告" in await warned.inner_text()
    assert await page.get_attribute("#check-state", "data-state") == "ok"
    # An error beside it (a category code of three digits): both are listed, the warning still as a warning.
    mcc_line = next(n for n, line in enumerate(source.splitlines(), 1) if "merchant.mcc in" in line)
    await page.fill("#source", source.replace('"5812", "5813", "5814"', '"581"'))
    await page.wait_for_selector("#check-state[data-state=invalid]")
    assert await page.locator("#diagnostics li.warning").count() == 1
    assert await page.locator("#diagnostics li:not(.warning)").count() == 1
    assert await page.locator("#gutter div.bad").all_inner_texts() == [str(mcc_line)]
    await visit.shot("gov-editor-warning")


async def test_auditor_explores_the_ledger(visit):
    page, site = visit.page, visit.site
    await visit.sign_in("auditor")
    assert await visit.nav() == ["活动", "账本", "核验", "风险核查"]
    await page.click("a[data-nav=ledger]")
    await page.fill("#f-campaign", site.dining)
    await page.press("#f-campaign", "Enter")
    await page.locator("#tx-list tbody tr").nth(1).wait_for()
    expected = visit.api("auditor", f"/v1/ledger/transactions?campaign_id={site.dining}&limit=50")["items"]
    rows = page.locator("#tx-list tbody tr")
    assert await rows.count() == len(expected)
    await visit.shot("auditor-ledger")
    await page.click("a[data-tab=books]")
    await page.fill("#books", site.dining)
    await page.press("#books", "Enter")
    await page.wait_for_selector("#books-out .notice.ok")
    books = visit.api("auditor", f"/v1/ledger/campaigns/{site.dining}/reconciliation")
    assert books["balanced"] is True
    assert fen((await page.locator("#books-out td.num").all_inner_texts())[0]) == books["funders"][0]["funded_fen"]
    await visit.shot("auditor-books")
    await page.click("a[data-tab=statement]")
    await page.fill("#st-merchant", "xuhui-noodles")
    await page.fill("#st-date", "2025-01-06")
    await page.click("#statement-form button[type=submit]")
    await page.wait_for_selector("[data-figure=closing]")
    statement = visit.api("auditor", "/v1/merchants/xuhui-noodles/statement?date=2025-01-06")
    assert fen(await page.locator("[data-figure=opening]").inner_text()) == statement["opening_fen"]
    assert fen(await page.locator("[data-figure=closing]").inner_text()) == statement["closing_fen"]
    assert await page.locator("#st-out tbody tr").count() == len(statement["lines"]) == 2


async def _verify(page) -> tuple[str, list[tuple[str, str]]]:
    await page.click("#verify-button")
    verdict = await page.wait_for_selector("#verdict [data-verdict]")
    steps = [
        (await li.get_attribute("data-step"), await li.get_attribute("data-pass"))
        for li in await page.locator("#verify-steps li").all()
    ]
    return await verdict.get_attribute("data-verdict"), steps


async def test_auditor_verify_is_green_for_a_good_proof_and_red_for_a_tampered_one_or_a_wrong_key(visit):
    page, site = visit.page, visit.site
    await visit.sign_in("auditor")
    await page.goto(f"{site.base_url}/console#/verify/{site.ledger_tx_ids[4]}")
    await page.click("#fetch-key")
    served = visit.api("auditor", "/v1/ledger/public-key")["public_key"]
    await expect(page.locator("#pin-input")).to_have_value(served)
    await page.click("#pin-button")
    await page.wait_for_selector("#pinned-key")
    verdict, steps = await _verify(page)
    assert verdict == "pass", steps
    assert [name for name, _ in steps] == [
        "verify.step.key",
        "verify.step.latest",
        "verify.step.tx",
        "verify.step.body",
        "verify.step.leaf",
        "verify.step.path",
    ]
    assert all(ok == "1" for _, ok in steps)
    await visit.shot("auditor-verify-pass")

    async def tamper(route):
        response = await route.fetch()
        proof = await response.json()
        first = bytes.fromhex(proof["audit_path"][0])
        proof["audit_path"][0] = (bytes([first[0] ^ 1]) + first[1:]).hex()
        await route.fulfill(response=response, json=proof)

    await page.route("**/proof**", tamper)
    verdict, steps = await _verify(page)
    assert verdict == "fail"
    assert steps[-1] == ("verify.step.path", "0")
    await visit.shot("auditor-verify-tampered")
    await page.unroute("**/proof**")

    wrong = base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    await page.click("#unpin")
    await page.fill("#pin-input", wrong)
    await page.click("#pin-button")
    await page.wait_for_selector("#pinned-key")
    verdict, steps = await _verify(page)
    assert verdict == "fail"
    assert steps[-1] == ("verify.step.latest", "0")
    await visit.shot("auditor-verify-wrong-key")


async def test_operator_manages_issuers_merchants_keys_and_tokens(visit):
    page, site = visit.page, visit.site
    await visit.sign_in("admin")
    assert await visit.nav() == ["发行方", "商户", "付款批次", "令牌", "事件推送", "风险核查"]
    await page.wait_for_selector("#issuer-list tbody tr")
    assert await page.locator("#issuer-list tbody tr").count() == len(site.issuers)
    await page.fill("#issuer-form-name", "深圳市财政局")
    await page.fill("#issuer-form-region_code", "440300")
    await page.click("#issuer-form button[type=submit]")
    await page.wait_for_selector("#issuer-list >> text=深圳市财政局")
    await page.fill("#appropriation-form-issuer", site.issuers["310000"])
    await page.fill("#appropriation-form-yuan", "20000000.00")
    await page.click("#appropriation-form button[type=submit]")
    await page.wait_for_selector("#appropriation-form-out .notice.ok")
    issuer = visit.api("admin", f"/v1/issuers/{site.issuers['310000']}")
    assert issuer["appropriation_fen"] == 2_000_000_000
    committed = page.locator(f"[data-committed='{site.issuers['310000']}']")
    assert fen(await committed.inner_text()) == issuer["committed_fen"] > 0
    await visit.shot("operator-issuers")

    await page.click("a[data-nav=merchants]")
    await page.wait_for_selector("#merchant-list tbody tr")
    # A merchant named with markup is shown as its text, and no element is made from it.
    assert await page.locator("#merchant-list >> text=Odd & Co").count() == 1
    assert await page.locator("#merchant-list img").count() == 0
    assert await page.title() != "1"
    await page.click("button[data-new-key='xuhui-noodles']")
    secret = await page.locator("[data-secret=key-secret]").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    await visit.shot("operator-merchants")

    # A payout hold, then a payout run that leaves the held merchant out; the bank file; one item confirmed paid.
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept("证照复核中 documents under review")))
    await page.click("button[data-hold-action='jingan-bar']")
    await page.wait_for_selector("[data-hold='jingan-bar']")
    await page.click("a[data-nav=payouts]")
    await page.fill("#cutoff", "2025-01-08T20:00:00+08:00")
    await page.click("#run-form button[type=submit]")
    await page.wait_for_selector("#item-list tbody tr [data-item-status]")
    run_id = page.url.rsplit("/", 1)[1]
    run = visit.api("admin", f"/v1/payout-runs/{run_id}")
    assert sorted(i["merchant_id"] for i in run["items"]) == ["pudong-fastfood", "xuhui-noodles"]
    assert fen(await page.locator("[data-figure=run-total]").inner_text()) == run["total_fen"]
    await page.click("#download")
    csv_text = await page.locator("[data-csv]").inner_text()
    assert csv_text.splitlines()[0] == "item_id,merchant_id,settlement_wallet,amount_fen,reference"
    assert len(csv_text.splitlines()) == 1 + len(run["items"])
    first = run["items"][0]["id"]
    await page.fill(f"[data-ref='{first}']", "BANK-0001")
    await page.click(f"[data-paid='{first}']")
    await page.wait_for_selector("[data-item-status=paid]")
    assert visit.api("admin", f"/v1/payout-runs/{run_id}")["items"][0]["status"] == "paid"
    await visit.shot("operator-payouts")

    await page.click("a[data-nav=webhooks]")
    await page.fill("#wh-url", "http://127.0.0.1:9/voucher-engine")
    await page.click("#webhook-form button[type=submit]")
    secret_text = await page.locator("[data-secret=webhook]").inner_text()
    assert len(secret_text) >= 32
    await page.wait_for_selector("#webhook-list [data-webhook]")
    listed = visit.api("admin", "/v1/webhooks")["items"]
    assert [w["url"] for w in listed] == ["http://127.0.0.1:9/voucher-engine"]
    assert "secret" not in listed[0]
    await visit.shot("operator-webhooks")
    await page.click(f"[data-webhook='{listed[0]['id']}']")
    await page.wait_for_selector("#delivery-list table")

    await page.click("a[data-nav=tokens]")
    await page.select_option("#token-form-role", "auditor")
    await page.click("#token-form button[type=submit]")
    doomed = await page.locator("[data-secret=token]").inner_text()
    doomed_id = httpx.get(site.base_url + "/v1/whoami", headers={"Authorization": f"Bearer {doomed}"}).json()[
        "token_id"
    ]
    await page.wait_for_selector(f"button[data-revoke='{doomed_id}']")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click(f"button[data-revoke='{doomed_id}']")
    await page.wait_for_selector(f"[data-revoked='{doomed_id}']")
    assert httpx.get(site.base_url + "/v1/whoami", headers={"Authorization": f"Bearer {doomed}"}).status_code == 401
    await page.click("#token-form button[type=submit]")
    token = await page.locator("[data-secret=token]").inner_text()
    assert token != doomed
    await visit.shot("operator-tokens")
    await page.click("#signout")
    await page.fill("#token", token)
    await page.click("#signin button[type=submit]")
    await page.wait_for_selector("#who[data-role=auditor]")


async def test_console_answers_carry_a_policy_that_forbids_other_hosts(site):
    answer = httpx.get(site.base_url + "/console")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "http" not in policy
    assert httpx.get(site.base_url + "/console/vendor/echarts/LICENSE").status_code == 200
    assert httpx.get(site.base_url + "/console/../pyproject.toml").status_code == 404
    assert httpx.get(site.base_url + "/console/js/nope.js").json()["code"] == "NOT_FOUND"


async def test_cofunder_approves_its_share_and_sees_the_decision(visit):
    page, site = visit.page, visit.site
    xuhui = site.issuers["310104"]
    await visit.sign_in("cofunder", role="gov")
    await page.wait_for_selector(f"a[data-campaign='{site.elderly}']")
    assert await page.locator("a[data-campaign]").count() == 1  # only the campaign it is named in as co-funder
    assert await visit.nav() == ["活动", "合约编辑器", "风险核查"]
    assert await page.locator(f"[data-my-approval='{site.elderly}']").inner_text() == "待您审批"
    await page.click(f"a[data-campaign='{site.elderly}']")
    await expect(page.locator(f"[data-approval='{xuhui}']")).to_have_text("待审批")
    share = next(
        f for f in visit.api("cofunder", f"/v1/campaigns/{site.elderly}")["funders"] if f["issuer_id"] == xuhui
    )
    assert fen(await page.locator("#approval p").inner_text()) == share["amount_fen"]
    await visit.shot("gov-cofunding")

    await page.click(f"[data-decline='{xuhui}']")
    await expect(page.locator(f"[data-approval='{xuhui}']")).to_have_text("已拒绝")
    await page.click(f"[data-approve='{xuhui}']")
    await expect(page.locator(f"[data-approval='{xuhui}']")).to_have_text("已同意")
    campaign = visit.api("cofunder", f"/v1/campaigns/{site.elderly}")
    assert next(f for f in campaign["funders"] if f["issuer_id"] == xuhui)["approval"] == "approved"
    assert [d["decision"] for d in campaign["funder_decisions"]] == ["declined", "approved"]
    assert await page.locator("#approval-history [data-decision]").all_inner_texts() == ["已拒绝", "已同意"]
    assert await page.locator(f"[data-approve='{xuhui}']").is_disabled()
    await visit.shot("gov-cofunding-approved")

    # The flags it sees are its own issuer's campaigns' only: none here (the flags are on Shanghai's campaign).
    await page.click("a[data-nav=risk]")
    await page.wait_for_selector("#flag-list[data-count]")
    assert await page.locator("#flag-list").get_attribute("data-count") == "0"


async def test_risk_flags_show_their_evidence_and_a_decision_changes_their_status(visit):
    page, site = visit.page, visit.site
    await visit.sign_in("gov")
    await page.click("a[data-nav=risk]")
    await page.wait_for_selector("#flag-list[data-count]")
    flags = visit.api("gov", "/v1/risk/flags?limit=500")["items"]
    odd = {f["redemption_ids"][0]: f for f in flags if f["signal"] == "odd_hour"}
    assert sorted(odd) == sorted(site.odd_hour_ids)
    assert await page.locator("#flag-list [data-flag]").count() == len(flags)
    await page.select_option("#rf-status", "confirmed")
    await page.click("#flag-filters button[type=submit]")
    await page.wait_for_selector("#flag-list[data-count='0']")
    await page.select_option("#rf-status", "open")
    await page.click("#flag-filters button[type=submit]")
    await page.wait_for_selector(f"#flag-list[data-count='{sum(f['status'] == 'open' for f in flags)}']")
    await visit.shot("gov-risk")

    # One flag's evidence: the rule, the figures the rule saw, the redemption with its subsidy from the ledger.
    flag = odd[site.odd_hour_ids[0]]
    await page.click(f"[data-flag='{flag['id']}']")
    await page.wait_for_selector("#flag-evidence")
    assert await page.locator("[data-rule]").inner_text() == flag["evidence"]["rule"]
    for key, value in flag["evidence"].items():
        if key != "rule" and not isinstance(value, (dict, list)):
            shown = await page.locator(f"[data-evidence='{key}']").inner_text()
            if value is None:
                assert shown == "—", key
            else:
                assert (fen(shown) if key.endswith("_fen") else shown) == (
                    value if key.endswith("_fen") else str(value)
                )
    ledger = visit.api("gov", f"/v1/ledger/transactions?campaign_id={site.dining}&limit=200")["items"]
    redeem = next(tx for tx in ledger if tx["refs"].get("redemption_id") == flag["redemption_ids"][0])
    paid = next(p["debit_fen"] for p in redeem["postings"] if p["account"].startswith("merchant:"))
    assert fen(await page.locator(f"[data-subsidy='{flag['redemption_ids'][0]}']").inner_text()) == paid
    await visit.shot("gov-risk-flag")

    # Confirmed by the campaign's government: the status changes, the decision is shown with its note and clawback.
    await page.fill("#flag-note", "凌晨四点的堂食订单 no dine-in at 4 a.m.")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click("[data-decide=confirm]")
    await page.wait_for_selector("#flag-decision[data-decision=confirm]")
    assert await page.locator(f"h1 [data-flag-status='{flag['id']}']").inner_text() == "已确认"
    decided = visit.api("gov", f"/v1/risk/flags/{flag['id']}")
    assert decided["status"] == "confirmed" and decided["decision"]["note"] == "凌晨四点的堂食订单 no dine-in at 4 a.m."
    assert len(decided["decision"]["clawback_ids"]) == 1
    assert await page.locator("#flag-decision [data-note]").inner_text() == decided["decision"]["note"]
    await visit.shot("gov-risk-decided")
    await page.click("#lang")
    await page.wait_for_selector("text=Evidence")
    assert await page.locator(f"h1 [data-flag-status='{flag['id']}']").inner_text() == "confirmed"
    await visit.shot("gov-risk-decided-en")
    await page.click("#lang")
    await page.wait_for_selector("text=证据")

    # The auditor reads the other flag and may not decide; the operator clears it.
    other = odd[site.odd_hour_ids[1]]
    await page.click("#signout")
    await visit.sign_in("auditor")
    await page.goto(f"{site.base_url}/console#/risk/{other['id']}")
    await page.wait_for_selector(f"[data-redemption='{other['redemption_ids'][0]}']")
    assert await page.locator("[data-decide]").count() == 0
    # The campaign list the sign-in began to draw does not end up inside this page.
    assert await page.locator("a[data-campaign]").count() == 0
    await visit.shot("auditor-risk-flag")
    await page.click("#signout")
    await visit.sign_in("admin")
    await page.goto(f"{site.base_url}/console#/risk/{other['id']}")
    await page.click("[data-decide=clear]")
    await page.wait_for_selector("#flag-decision[data-decision=clear]")
    assert visit.api("admin", f"/v1/risk/flags/{other['id']}")["status"] == "cleared"
    await page.click("a[data-nav=risk]")
    await page.wait_for_selector(f"[data-flag-status='{other['id']}']")
    assert await page.locator(f"[data-flag-status='{other['id']}']").inner_text() == "已排除"
    await visit.shot("operator-risk")
