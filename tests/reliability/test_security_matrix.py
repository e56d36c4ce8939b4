"""The security matrix: every endpoint the app serves × every kind of caller, with the answer each must get.

Callers: nobody, a made-up token, admin, the owning government (`gov`, Shanghai), another government (`gov_other`,
Suzhou: cross-issuer access), an unbound auditor, an auditor bound to Shanghai, the till of the merchant that made
the redemption (`merchant`), another merchant's till (`merchant_other`), and a till that signs with one merchant's
secret under another merchant's key id (`key_swap`).

Expected answers: "ok" (any 2xx: the call did what it is for, on a resource made fresh for it where the call
changes state), 401 (no credential the endpoint takes), 403 (the wrong role), 404 (another issuer's or merchant's
things, whose existence is none of the caller's business). Callers who must be refused go first, and refusals
change nothing (checked at the end).

The list of endpoints comes from the app's routes: an endpoint added without a row here fails the coverage test.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from reliability_helpers import CONTRACTS, Till, build_world, holder, routes

from voucher_engine.merchants.client import signed_headers

CALLERS = (
    "none",
    "bad_token",
    "admin",
    "gov",
    "gov_other",
    "auditor",
    "auditor_bound",
    "merchant",
    "merchant_other",
    "key_swap",
)
BEARER = ("admin", "gov", "gov_other", "auditor", "auditor_bound")
SIGNERS = ("merchant", "merchant_other")
OK = "ok"
NOW = "2025-01-15T12:00:00+08:00"
MERCHANT_BODY = {
    "name": "Matrix shop",
    "mcc": "5812",
    "region_code": "310104",
    "settlement_wallet": "0000000000000001",
    "tags": [],
}


def public() -> dict[str, Any]:
    return dict.fromkeys(CALLERS, OK)


def bearer(*ok: str, hidden: tuple[str, ...] = ()) -> dict[str, Any]:
    """A bearer-token endpoint: `ok` callers pass, `hidden` get 404, other token holders 403, the rest 401."""
    expect: dict[str, Any] = dict.fromkeys(CALLERS, 401)
    for caller in BEARER:
        expect[caller] = OK if caller in ok else 404 if caller in hidden else 403
    return expect


def signed(*ok: str, hidden: tuple[str, ...] = ()) -> dict[str, Any]:
    """A signed POS endpoint: bearer tokens and swapped keys are 401 whatever they hold."""
    expect: dict[str, Any] = dict.fromkeys(CALLERS, 401)
    for caller in SIGNERS:
        expect[caller] = OK if caller in ok else 404 if caller in hidden else 401
    return expect


ADMIN = bearer("admin")
SAMPLE_PAYMENT = {"merchant": {"mcc": "5812", "region_code": "310104"}, "at": NOW, "order_amount_fen": 12000}
READERS = ("gov", "gov_other", "auditor", "auditor_bound", "admin")
LEDGER_READERS = ("gov", "gov_other", "auditor", "auditor_bound")  # the operator does not read the books
OWN_CAMPAIGN_READ = bearer("gov", "auditor", "auditor_bound", "admin", hidden=("gov_other",))
OWN_LEDGER_READ = bearer("gov", "auditor", "auditor_bound", hidden=("gov_other",))
CAMPAIGN_CHANGE = bearer("gov", hidden=("gov_other",))
CAMPAIGN_DECIDE = bearer("admin", "gov", hidden=("gov_other",))


@dataclass
class Context:
    """Everything the requests point at: one world, Shanghai's campaigns, a redemption, tokens and tills."""

    service: Any
    world: Any
    tokens: dict[str, str] = field(default_factory=dict)
    tills: dict[str, Till] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    fresh_codes: list[tuple[str, str]] = field(default_factory=list)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def headers(self, caller: str, method: str, path: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if caller == "bad_token":
            headers["Authorization"] = "Bearer ve_" + secrets.token_urlsafe(32)
        elif caller in BEARER:
            headers["Authorization"] = f"Bearer {self.tokens[caller]}"
        elif caller in SIGNERS:
            till = self.tills[caller]
            headers.update(signed_headers(till.key_id, till.secret, method, path, body))
        elif caller == "key_swap":  # the other merchant's key id, this merchant's secret
            mine, theirs = self.tills["merchant"], self.tills["merchant_other"]
            headers.update(signed_headers(theirs.key_id, mine.secret, method, path, body))
        return headers

    async def gov(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.service.client.request(
            method, path, json=body, headers=self.service.auth(self.tokens["gov"])
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def campaign(self, *moves: str, distribution: str = "targeted") -> str:
        source = (CONTRACTS / "shanghai-dining-2025.contract").read_text()
        if distribution != "targeted":
            source = source.replace("distribution targeted", f"distribution {distribution}")
        campaign_id = (await self.gov("POST", "/v1/campaigns", {"source": source}))["id"]
        for move in moves:
            await self.gov("POST", f"/v1/campaigns/{campaign_id}/{move}")
        return campaign_id

    async def cofunded(self) -> str:
        """A draft of Suzhou's that names Shanghai as a co-funder."""
        response = await self.service.client.post(
            "/v1/campaigns", json={"source": COFUNDED}, headers=self.service.auth(self.tokens["gov_other"])
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def wallet(self) -> str:
        return f"65{next(self.counter):014d}"


Factory = Callable[[Context, bool], Awaitable[tuple[str, Any]]]


def at(path: str, body: Any = None) -> Factory:
    """A request whose path (formatted with the context's ids) and body do not depend on the caller."""

    async def make(ctx: Context, fresh: bool) -> tuple[str, Any]:
        return path.format(**ctx.ids), body

    return make


def move(action: str, before: tuple[str, ...]) -> Factory:
    """A lifecycle move: on the shared campaign for callers who must be refused, on a fresh one in the right
    status for the caller who may make it."""

    async def make(ctx: Context, fresh: bool) -> tuple[str, Any]:
        campaign_id = await ctx.campaign(*before) if fresh else ctx.ids["campaign_id"]
        return f"/v1/campaigns/{campaign_id}/{action}", None

    return make


async def _issuance(ctx: Context, fresh: bool) -> tuple[str, Any]:
    return f"/v1/campaigns/{ctx.ids['campaign_id']}/issuances", {"holders": [holder(ctx.wallet())]}


async def _claim(ctx: Context, fresh: bool) -> tuple[str, Any]:
    wallet = ctx.wallet()
    return (
        f"/v1/campaigns/{ctx.ids['claims_campaign_id']}/claims",
        {"wallet_id": wallet, "id_hash": "h-" + wallet, "attributes": {"age": 30, "residence_region": "310104"}},
    )


async def _redeem(ctx: Context, fresh: bool) -> tuple[str, Any]:
    code, wallet = ctx.fresh_codes.pop() if fresh else ctx.fresh_codes[0]
    return "/v1/redemptions", {
        "voucher_code": code,
        "wallet_id": wallet,
        "pos_txn_id": f"mx-{next(ctx.counter)}",
        "order_amount_fen": 12000,
    }


async def _quote(ctx: Context, fresh: bool) -> tuple[str, Any]:
    code, wallet = ctx.fresh_codes[0]  # a quote changes nothing: the same voucher serves every caller
    return "/v1/redemptions/quote", {"voucher_code": code, "wallet_id": wallet, "order_amount_fen": 12000}


async def _refund(ctx: Context, fresh: bool) -> tuple[str, Any]:
    return (
        f"/v1/redemptions/{ctx.ids['redemption_id']}/refunds",
        {"refund_id": f"rf-{next(ctx.counter)}", "amount_fen": 100, "reason": "matrix"},
    )


async def _revoke_key(ctx: Context, fresh: bool) -> tuple[str, Any]:
    key_id = ctx.ids["matrix_key_id"]
    if fresh:
        key_id = (await ctx.service.pos_key("matrix-shop"))["key_id"]
    return f"/v1/merchants/matrix-shop/keys/{key_id}", None


async def _revoke_token(ctx: Context, fresh: bool) -> tuple[str, Any]:
    token_id = ctx.ids["spare_token_id"]
    if fresh:
        made = await ctx.service.client.post("/v1/tokens", json={"role": "auditor"}, headers=ctx.service.admin)
        token_id = made.json()["id"]
    return f"/v1/tokens/{token_id}", None


def funding_decision(action: str) -> Factory:
    """Shanghai's decision on its share of a campaign of Suzhou's: on the shared one for callers who must be
    refused, on a fresh one for Shanghai's government, whose share it is."""

    async def make(ctx: Context, fresh: bool) -> tuple[str, Any]:
        campaign_id = await ctx.cofunded() if fresh else ctx.ids["cofunded_campaign_id"]
        return f"/v1/campaigns/{campaign_id}/funders/iss_310000/{action}", None

    return make


async def _new_issuer(ctx: Context, fresh: bool) -> tuple[str, Any]:
    return "/v1/issuers", {"name": "Guangdong", "region_code": "440000"}


COFUNDED = """campaign "Suzhou and Shanghai" issuer 320500
budget ¥1,000
funders {
    320500: 50%
    310000: 50%
}
voucher fixed: ¥10 off
valid during 2025 China time
"""


async def _clawback(ctx: Context, fresh: bool) -> tuple[str, Any]:
    """A clawback: refused callers on the shared redemption; a caller who may, on a redemption made for it."""
    redemption_id = ctx.ids["redemption_id"]
    if fresh:
        code, wallet = ctx.fresh_codes.pop()
        paid = await ctx.tills["merchant"].redeem(code, 12000, wallet=wallet, pos_txn_id=f"mx-cb-{next(ctx.counter)}")
        assert paid.status_code == 201, paid.text
        redemption_id = paid.json()["id"]
    return f"/v1/redemptions/{redemption_id}/clawback", {"reason": "matrix"}


async def _confirmation(ctx: Context, fresh: bool) -> tuple[str, Any]:
    item = {"item_id": ctx.ids["item_id"], "status": "paid", "bank_reference": "MATRIX-1"}
    return f"/v1/payout-runs/{ctx.ids['run_id']}/confirmations", {"items": [item]}


STATEMENT_READ = bearer("admin", "auditor", hidden=("auditor_bound",))


def _attester_body() -> dict[str, str]:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return {"name": "Matrix public data", "public_key": base64.b64encode(raw).decode()}


async def _new_attester(ctx: Context, fresh: bool) -> tuple[str, Any]:
    return "/v1/attesters", _attester_body()


async def _retire_attester(ctx: Context, fresh: bool) -> tuple[str, Any]:
    attester_id = ctx.ids["attester_id"]
    if fresh:
        made = await ctx.service.client.post("/v1/attesters", json=_attester_body(), headers=ctx.service.admin)
        attester_id = made.json()["id"]
    return f"/v1/attesters/{attester_id}", None


async def _audit_attestation(ctx: Context, fresh: bool) -> tuple[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from voucher_engine.attestations import jws

    claims = {"iss": ctx.ids["attester_id"], "sub": "6600000000000001", "aud": ctx.ids["campaign_id"]}
    token = jws.sign({**claims, "iat": 1, "exp": 2, "jti": "m", "eligible": True}, Ed25519PrivateKey.generate())
    return "/v1/attestations/verify", {"attestation": token}


CHECK_BODY = {"source": (CONTRACTS / "shanghai-dining-2025.contract").read_text()}
# A public address written as an IP: the URL check needs no DNS, and nothing is ever delivered during the test.
WEBHOOK_BODY = {"url": "http://93.184.216.34/ve-hook", "events": ["refund.created"]}


async def _own_webhook(ctx: Context, fresh: bool) -> str:
    if not fresh:
        return ctx.ids["webhook_id"]
    return (await ctx.gov("POST", "/v1/webhooks", WEBHOOK_BODY))["id"]


async def _delete_webhook(ctx: Context, fresh: bool) -> tuple[str, Any]:
    return f"/v1/webhooks/{await _own_webhook(ctx, fresh)}", None


EXPLAIN_BODY = {**CHECK_BODY, "payment": SAMPLE_PAYMENT}


async def _open_flag(ctx: Context, key: str) -> str:
    """A risk flag on Shanghai's campaign, opened the way the redemption batch and the detector open theirs."""
    from voucher_engine.risk import service as risk

    async with ctx.service.state.engine.begin() as conn:
        opened = await risk.open_flag(
            conn,
            signal="pair_recurrence",
            outcome="flag",
            merchant_id="xuhui-noodles",
            campaign_id=ctx.ids["campaign_id"],
            redemption_ids=[ctx.ids["redemption_id"]],
            evidence={"vouchers": 1},
            dedupe_key=key,
        )
    return opened.flag.id


async def _flag_decision(ctx: Context, fresh: bool) -> tuple[str, Any]:
    """A decision: refused callers on the shared flag; a caller who may, on a flag opened for it."""
    flag_id = await _open_flag(ctx, f"matrix:{next(ctx.counter)}") if fresh else ctx.ids["flag_id"]
    return f"/v1/risk/flags/{flag_id}/decision", {"decision": "clear", "note": "matrix"}


# (method, path as routed) -> (expected answer per caller, the request)
MATRIX: dict[tuple[str, str], tuple[dict[str, Any], Factory]] = {
    # Public: documentation, health, the ledger's public key.
    ("GET", "/openapi.json"): (public(), at("/openapi.json")),
    ("GET", "/docs"): (public(), at("/docs")),
    ("GET", "/redoc"): (public(), at("/redoc")),
    ("GET", "/healthz"): (public(), at("/healthz")),
    ("GET", "/readyz"): (public(), at("/readyz")),
    ("GET", "/v1/ledger/public-key"): (public(), at("/v1/ledger/public-key")),
    ("GET", "/metrics"): (public(), at("/metrics")),
    # The web console's pages and files (it signs in with a bearer token from the page itself).
    ("GET", "/console"): (public(), at("/console")),
    ("GET", "/console/{path:path}"): (public(), at("/console/js/main.js")),
    ("GET", "/v1/whoami"): (bearer(*BEARER), at("/v1/whoami")),
    # Operator.
    ("POST", "/v1/issuers"): (ADMIN, _new_issuer),
    ("GET", "/v1/issuers"): (ADMIN, at("/v1/issuers")),
    # An issuer (its appropriation and commitment): the operator, auditors and its own government.
    ("GET", "/v1/issuers/{issuer_id}"): (
        bearer("admin", "gov", "auditor", "auditor_bound", hidden=("gov_other",)),
        at("/v1/issuers/iss_310000"),
    ),
    ("PATCH", "/v1/issuers/{issuer_id}"): (ADMIN, at("/v1/issuers/iss_310000", {"appropriation_fen": None})),
    ("PUT", "/v1/merchants/{merchant_id}"): (ADMIN, at("/v1/merchants/matrix-shop", MERCHANT_BODY)),
    ("GET", "/v1/merchants"): (ADMIN, at("/v1/merchants")),
    ("GET", "/v1/merchants/{merchant_id}"): (ADMIN, at("/v1/merchants/matrix-shop")),
    ("POST", "/v1/merchants/{merchant_id}/suspend"): (ADMIN, at("/v1/merchants/matrix-shop/suspend")),
    ("POST", "/v1/merchants/{merchant_id}/resume"): (ADMIN, at("/v1/merchants/matrix-shop/resume")),
    ("POST", "/v1/merchants/{merchant_id}/keys"): (ADMIN, at("/v1/merchants/matrix-shop/keys")),
    ("DELETE", "/v1/merchants/{merchant_id}/keys/{key_id}"): (ADMIN, _revoke_key),
    ("POST", "/v1/tokens"): (ADMIN, at("/v1/tokens", {"role": "auditor"})),
    ("GET", "/v1/tokens"): (ADMIN, at("/v1/tokens")),
    ("DELETE", "/v1/tokens/{token_id}"): (ADMIN, _revoke_token),
    ("PUT", "/v1/test/clock"): (ADMIN, at("/v1/test/clock", {"now": NOW})),
    ("GET", "/v1/test/clock"): (ADMIN, at("/v1/test/clock")),
    ("DELETE", "/v1/test/clock"): (ADMIN, at("/v1/test/clock")),
    ("GET", "/v1/pos/ping"): (signed(*SIGNERS), at("/v1/pos/ping")),
    # Merchant settlement (admin; statements also unbound auditors and, signed, the merchant itself).
    ("POST", "/v1/merchants/{merchant_id}/hold"): (ADMIN, at("/v1/merchants/matrix-shop/hold", {"reason": "mx"})),
    ("POST", "/v1/merchants/{merchant_id}/release"): (ADMIN, at("/v1/merchants/matrix-shop/release")),
    ("GET", "/v1/merchants/{merchant_id}/statement"): (
        STATEMENT_READ,
        at("/v1/merchants/xuhui-noodles/statement?date=2025-01-15"),
    ),
    ("GET", "/v1/pos/statement"): (signed(*SIGNERS), at("/v1/pos/statement?date=2025-01-15&format=csv")),
    ("POST", "/v1/payout-runs"): (ADMIN, at("/v1/payout-runs", {"cutoff": NOW})),
    ("GET", "/v1/payout-runs"): (ADMIN, at("/v1/payout-runs")),
    ("GET", "/v1/payout-runs/{run_id}"): (ADMIN, at("/v1/payout-runs/{run_id}")),
    ("GET", "/v1/payout-runs/{run_id}/file"): (ADMIN, at("/v1/payout-runs/{run_id}/file")),
    ("POST", "/v1/payout-runs/{run_id}/confirmations"): (ADMIN, _confirmation),
    ("POST", "/v1/redemptions/{redemption_id}/clawback"): (bearer("admin", "gov", hidden=("gov_other",)), _clawback),
    # Campaigns (gov changes its own; readers read; another government sees nothing of them).
    ("POST", "/v1/contracts/check"): (bearer(*READERS), at("/v1/contracts/check", CHECK_BODY)),
    ("POST", "/v1/contracts/explain"): (bearer(*READERS), at("/v1/contracts/explain", EXPLAIN_BODY)),
    # gov_other may create campaigns, but not this contract: its issuer region is not within Suzhou's.
    ("POST", "/v1/campaigns"): (bearer("gov"), at("/v1/campaigns", CHECK_BODY)),
    ("GET", "/v1/campaigns"): (bearer(*READERS), at("/v1/campaigns")),
    ("GET", "/v1/campaigns/{campaign_id}"): (OWN_CAMPAIGN_READ, at("/v1/campaigns/{campaign_id}")),
    # Attesters (the admin registers and retires keys; auditors read and check attestations).
    ("POST", "/v1/attesters"): (ADMIN, _new_attester),
    ("GET", "/v1/attesters"): (bearer("admin", "auditor", "auditor_bound"), at("/v1/attesters")),
    ("DELETE", "/v1/attesters/{attester_id}"): (ADMIN, _retire_attester),
    ("POST", "/v1/attestations/verify"): (bearer("admin", "auditor", "auditor_bound"), _audit_attestation),
    ("GET", "/v1/campaigns/{campaign_id}/stats"): (OWN_LEDGER_READ, at("/v1/campaigns/{campaign_id}/stats")),
    ("POST", "/v1/campaigns/{campaign_id}/fund"): (CAMPAIGN_CHANGE, move("fund", ())),
    ("POST", "/v1/campaigns/{campaign_id}/activate"): (CAMPAIGN_CHANGE, move("activate", ("fund",))),
    ("POST", "/v1/campaigns/{campaign_id}/pause"): (CAMPAIGN_CHANGE, move("pause", ("fund", "activate"))),
    ("POST", "/v1/campaigns/{campaign_id}/close"): (CAMPAIGN_CHANGE, move("close", ("fund", "activate"))),
    ("POST", "/v1/campaigns/{campaign_id}/issuances"): (CAMPAIGN_CHANGE, _issuance),
    # A co-funder's consent: only that co-funder's government (Shanghai, here, on Suzhou's campaign) gives it;
    # Suzhou, whose campaign it is, may not consent for Shanghai.
    ("POST", "/v1/campaigns/{campaign_id}/funders/{issuer_id}/approve"): (
        bearer("gov"),
        funding_decision("approve"),
    ),
    ("POST", "/v1/campaigns/{campaign_id}/funders/{issuer_id}/decline"): (
        bearer("gov"),
        funding_decision("decline"),
    ),
    ("GET", "/v1/issuances/{issuance_id}"): (OWN_CAMPAIGN_READ, at("/v1/issuances/{issuance_id}")),
    ("POST", "/v1/campaigns/{campaign_id}/claims"): (CAMPAIGN_CHANGE, _claim),
    # Listings are filtered by scope rather than refused: another government gets its own (empty) list.
    ("GET", "/v1/wallets/{wallet_id}/vouchers"): (bearer(*READERS), at("/v1/wallets/{wallet_id}/vouchers")),
    # Ledger (auditors; gov for its own campaigns).
    ("GET", "/v1/ledger/transactions"): (OWN_LEDGER_READ, at("/v1/ledger/transactions?campaign_id={campaign_id}")),
    ("GET", "/v1/ledger/transactions/{tx_id}"): (OWN_LEDGER_READ, at("/v1/ledger/transactions/{fund_tx_id}")),
    ("GET", "/v1/ledger/transactions/{tx_id}/proof"): (
        OWN_LEDGER_READ,
        at("/v1/ledger/transactions/{fund_tx_id}/proof"),
    ),
    ("GET", "/v1/ledger/accounts/{account}"): (OWN_LEDGER_READ, at("/v1/ledger/accounts/escrow:{campaign_id}")),
    ("GET", "/v1/ledger/vouchers/{voucher_id}/trace"): (OWN_LEDGER_READ, at("/v1/ledger/vouchers/{voucher_id}/trace")),
    ("GET", "/v1/ledger/campaigns/{campaign_id}/reconciliation"): (
        OWN_LEDGER_READ,
        at("/v1/ledger/campaigns/{campaign_id}/reconciliation"),
    ),
    ("GET", "/v1/ledger/export"): (OWN_LEDGER_READ, at("/v1/ledger/export?campaign_id={campaign_id}&format=csv")),
    ("GET", "/v1/ledger/checkpoints/latest"): (bearer(*LEDGER_READERS), at("/v1/ledger/checkpoints/latest")),
    ("GET", "/v1/ledger/checkpoints"): (bearer(*LEDGER_READERS), at("/v1/ledger/checkpoints")),
    # Signing a checkpoint now writes (sequences and signs): the operator's, never the read-only auditor's.
    ("POST", "/v1/ledger/checkpoints"): (ADMIN, at("/v1/ledger/checkpoints")),
    ("GET", "/v1/ledger/consistency"): (bearer(*LEDGER_READERS), at("/v1/ledger/consistency?from=1&to=1")),
    # Redemption (signed by a till; a merchant sees only its own redemptions).
    ("POST", "/v1/redemptions/quote"): (signed(*SIGNERS), _quote),
    ("POST", "/v1/redemptions"): (signed(*SIGNERS), _redeem),
    ("POST", "/v1/redemptions/{redemption_id}/refunds"): (signed("merchant", hidden=("merchant_other",)), _refund),
    ("GET", "/v1/redemptions/{redemption_id}"): (
        signed("merchant", hidden=("merchant_other",)),
        at("/v1/redemptions/{redemption_id}"),
    ),
    ("GET", "/v1/redemptions"): (signed(*SIGNERS), at("/v1/redemptions?pos_txn_id={pos_txn_id}")),
    # Risk control: the operator, auditors and the campaign's gov read flags; the operator and that gov decide.
    ("GET", "/v1/risk/flags"): (bearer(*READERS), at("/v1/risk/flags")),
    ("GET", "/v1/risk/flags/{flag_id}"): (OWN_CAMPAIGN_READ, at("/v1/risk/flags/{flag_id}")),
    ("GET", "/v1/risk/rules"): (bearer(*READERS), at("/v1/risk/rules")),
    ("POST", "/v1/risk/flags/{flag_id}/decision"): (CAMPAIGN_DECIDE, _flag_decision),
    # Webhooks: the operator's and each government's own (another government's are not found).
    ("POST", "/v1/webhooks"): (bearer("admin", "gov", "gov_other"), at("/v1/webhooks", WEBHOOK_BODY)),
    ("GET", "/v1/webhooks"): (bearer("admin", "gov", "gov_other"), at("/v1/webhooks")),
    ("DELETE", "/v1/webhooks/{webhook_id}"): (bearer("admin", "gov", hidden=("gov_other",)), _delete_webhook),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): (
        bearer("admin", "gov", hidden=("gov_other",)),
        at("/v1/webhooks/{webhook_id}/deliveries"),
    ),
}

# Run last: resetting the test clock would move business time out of the campaigns' window.
LAST = [("PUT", "/v1/test/clock"), ("GET", "/v1/test/clock"), ("DELETE", "/v1/test/clock")]
CODES_BY_STATUS = {401: {"UNAUTHENTICATED", "BAD_SIGNATURE"}, 403: {"FORBIDDEN"}, 404: {"NOT_FOUND"}}


async def _context(service) -> Context:
    world = await build_world(service)
    await world.set_clock(NOW)
    ctx = Context(service, world)
    ctx.tokens = {
        "admin": service.admin_token,
        "gov": world.gov["310000"],
        "gov_other": world.gov["320500"],
        "auditor": await service.token("auditor"),
        "auditor_bound": await service.token("auditor", "iss_310000"),
    }
    await service.merchant("xuhui-dumplings", mcc="5812", region_code="310104")
    other_key = await service.pos_key("xuhui-dumplings")
    ctx.tills = {
        "merchant": world.tills["xuhui-noodles"],
        "merchant_other": Till(service, "xuhui-dumplings", other_key["key_id"], other_key["secret"]),
    }
    ctx.ids["cofunded_campaign_id"] = await ctx.cofunded()
    spare = await service.client.post("/v1/tokens", json={"role": "auditor"}, headers=service.admin)
    ctx.ids["spare_token_id"] = spare.json()["id"]
    made = await service.client.post("/v1/attesters", json=_attester_body(), headers=service.admin)
    ctx.ids["attester_id"] = made.json()["id"]
    await service.merchant("matrix-shop")
    ctx.ids["matrix_key_id"] = (await service.pos_key("matrix-shop"))["key_id"]

    wallets = [f"6600000000000{n:03d}" for n in range(12)]
    campaign_id = await world.launch("shanghai-dining-2025.contract", [holder(w) for w in wallets])
    ctx.ids["campaign_id"] = campaign_id
    ctx.ids["claims_campaign_id"] = await ctx.campaign("fund", "activate", distribution="first come, first served")
    vouchers = {w: (await world.vouchers(w, campaign_id))[0] for w in wallets}
    ctx.fresh_codes = [(vouchers[w]["code"], w) for w in wallets[1:]]
    paid = await ctx.tills["merchant"].redeem(
        vouchers[wallets[0]]["code"], 12000, wallet=wallets[0], pos_txn_id="matrix-paid-1"
    )
    assert paid.status_code == 201, paid.text
    ctx.ids.update(
        redemption_id=paid.json()["id"],
        pos_txn_id="matrix-paid-1",
        wallet_id=wallets[0],
        voucher_id=vouchers[wallets[0]]["id"],
    )
    ctx.ids["flag_id"] = await _open_flag(ctx, "matrix:shared")
    campaign = await ctx.gov("GET", f"/v1/campaigns/{campaign_id}")
    ctx.ids["fund_tx_id"] = campaign["fund_tx_id"]
    from voucher_engine import clock  # the app runs in process: its business time, just after the redemption

    run = await service.client.post("/v1/payout-runs", json={"cutoff": clock.now().isoformat()}, headers=service.admin)
    assert run.status_code == 201 and len(run.json()["items"]) == 1, run.text
    ctx.ids.update(run_id=run.json()["id"], item_id=run.json()["items"][0]["id"])
    issued = await ctx.gov("POST", f"/v1/campaigns/{campaign_id}/issuances", {"holders": [holder(ctx.wallet())]})
    ctx.ids["issuance_id"] = issued["issuance_id"]
    ctx.ids["webhook_id"] = (await ctx.gov("POST", "/v1/webhooks", WEBHOOK_BODY))["id"]
    # Sequence what is committed (and sign it), so ledger reads and proofs find every transaction.
    made = await service.client.post("/v1/ledger/checkpoints", headers=service.admin)
    assert made.status_code == 201, made.text
    return ctx


def test_every_route_has_a_row_in_the_matrix(service):
    served = routes(service.app)
    missing = sorted(served - MATRIX.keys())
    stale = sorted(MATRIX.keys() - served)
    assert not missing, f"endpoints without an expectation in the security matrix: {missing}"
    assert not stale, f"matrix rows for endpoints the app no longer serves: {stale}"
    for expect, _ in MATRIX.values():
        assert set(expect) == set(CALLERS)


# Requests sent with POST that change nothing (their bodies are too large or too private for a query string):
# checking or explaining a contract, verifying an attestation for audit ("spends nothing").
READS_BY_POST = {
    ("POST", "/v1/contracts/check"),
    ("POST", "/v1/contracts/explain"),
    ("POST", "/v1/attestations/verify"),
}


def test_the_auditor_is_read_only():
    """Every write refuses both auditors (the matrix test checks that the answers are as written here)."""
    writes = [key for key in MATRIX if key[0] not in ("GET", "HEAD") and key not in READS_BY_POST]
    assert ("POST", "/v1/ledger/checkpoints") in writes
    allowed = [f"{m} {p} as {c}" for m, p in writes for c in ("auditor", "auditor_bound") if MATRIX[(m, p)][0][c] == OK]
    assert not allowed, allowed


async def test_every_endpoint_answers_every_caller_as_expected(service):
    ctx = await _context(service)
    order = [key for key in sorted(MATRIX) if key not in LAST] + LAST
    wrong: list[str] = []
    calls = 0
    for method, route in order:
        expect, factory = MATRIX[(method, route)]
        # Refusals first, on the shared resources; then the callers who may, each on a fresh resource.
        for caller in sorted(CALLERS, key=lambda c: expect[c] == OK):
            fresh = expect[caller] == OK
            path, body = await factory(ctx, fresh)
            raw = orjson.dumps(body) if body is not None else b""
            response = await service.client.request(
                method, path, content=raw, headers=ctx.headers(caller, method, path, raw)
            )
            calls += 1
            status = response.status_code
            if fresh:
                if not 200 <= status < 300:
                    wrong.append(f"{method} {path} as {caller}: {status}, expected 2xx: {response.text[:200]}")
                continue
            if status != expect[caller]:
                wrong.append(f"{method} {path} as {caller}: {status}, expected {expect[caller]}: {response.text[:200]}")
                continue
            if (
                not response.headers.get("content-type", "").startswith("application/problem+json")
                or response.json().get("code") not in CODES_BY_STATUS[status]
            ):
                wrong.append(f"{method} {path} as {caller}: not the problem+json of a {status}: {response.text[:200]}")
    assert not wrong, f"{len(wrong)} of {calls} calls answered wrongly:\n" + "\n".join(wrong)
    assert calls == len(MATRIX) * len(CALLERS)

    # The refusals changed nothing: the shared campaign is still active, with only what its owner did to it.
    await ctx.world.set_clock(NOW)
    campaign = await ctx.gov("GET", f"/v1/campaigns/{ctx.ids['campaign_id']}")
    assert campaign["status"] == "active"
    issuer = await service.client.get("/v1/issuers/iss_440000", headers=service.admin)
    assert issuer.status_code == 200  # made once, by the admin
    # Nobody refused consented for Shanghai, and the spare token is still valid.
    cofunded = await service.client.get(f"/v1/campaigns/{ctx.ids['cofunded_campaign_id']}", headers=service.admin)
    assert [f["approval"] for f in cofunded.json()["funders"]] == ["own", "pending"]
    tokens = await service.client.get("/v1/tokens?limit=1000", headers=service.admin)
    spare = [t for t in tokens.json()["items"] if t["id"] == ctx.ids["spare_token_id"]]
    assert spare and spare[0]["revoked_at"] is None
    # One refund of 100 fen (by the merchant) and two new redemptions (one per till), and two clawed back (by the
    # admin and the gov) of redemptions made for them: none by anyone refused.
    paid = await ctx.tills["merchant"].send("GET", f"/v1/redemptions/{ctx.ids['redemption_id']}")
    assert paid.json()["refunded_fen"] == 100 and paid.json()["status"] == "partially_refunded", paid.text
    assert campaign["totals"]["vouchers_redeemed"] == 5, campaign["totals"]
    assert campaign["totals"]["clawed_back_fen"] == 2 * 2000, campaign["totals"]
    run = await service.client.get(f"/v1/payout-runs/{ctx.ids['run_id']}", headers=service.admin)
    assert run.json()["items"][0]["status"] == "paid", run.text  # confirmed once, by the admin


@pytest.mark.parametrize("caller", ["gov", "auditor_bound"])
async def test_issuer_bound_callers_cannot_list_the_whole_ledger(service, caller):
    world = await build_world(service)
    token = world.gov["310000"] if caller == "gov" else await service.token("auditor", "iss_310000")
    for path in ("/v1/ledger/transactions", "/v1/ledger/export?format=csv"):
        response = await service.client.get(path, headers=service.auth(token))
        assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN", response.text
    for account in ("fiscal:iss_320500", "merchant:xuhui-noodles", "payout:xuhui-noodles", "settled:xuhui-noodles"):
        response = await service.client.get(f"/v1/ledger/accounts/{account}", headers=service.auth(token))
        assert response.status_code == 404, response.text
    own = await service.client.get("/v1/ledger/accounts/fiscal:iss_310000", headers=service.auth(token))
    assert own.status_code == 200, own.text
