"""The auditor's API over the running app: lists, accounts, trace, reconciliation, checkpoints, proofs, export."""

from __future__ import annotations

import base64
import io

import pytest

from voucher_engine.ledger import checkpoints, merkle, scoping, verify
from voucher_engine.ledger import service as ledger

from .conftest import seed


@pytest.fixture
def owners(monkeypatch):
    """Campaign ownership as the campaigns package will answer it (its table is not the ledger's business)."""
    table = {"cmp_0": "iss_310000", "cmp_1": "iss_310104"}

    async def campaign_issuer(conn, campaign_id):
        return table.get(campaign_id)

    monkeypatch.setattr(scoping, "campaign_issuer", campaign_issuer)
    return table


async def _setup(service):
    await service.issuer("310000")
    await service.issuer("310104")
    await seed(service.state.engine, redemptions=12)
    return service.auth(await service.token("auditor"))


async def test_lists_page_by_seq_and_filter(service, owners):
    auditor = await _setup(service)
    seen, cursor = [], None
    while True:
        response = await service.client.get(
            "/v1/ledger/transactions", params={"limit": 5, **({"cursor": cursor} if cursor else {})}, headers=auditor
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [tx["seq"] for tx in seen] == list(range(1, 17))
    tx = seen[2]
    assert set(tx) == {"id", "seq", "kind", "at", "postings", "refs", "hash", "prev_hash"}
    assert tx["prev_hash"] == seen[1]["hash"] and seen[0]["prev_hash"] == "0" * 64
    assert all(set(p) in ({"account", "debit_fen"}, {"account", "credit_fen"}) for p in tx["postings"])
    only = (
        await service.client.get(
            "/v1/ledger/transactions", params={"campaign_id": "cmp_1", "merchant_id": "m2"}, headers=auditor
        )
    ).json()["items"]
    assert only and all(t["refs"]["campaign_id"] == "cmp_1" and t["refs"]["merchant_id"] == "m2" for t in only)
    by_voucher = (
        await service.client.get("/v1/ledger/transactions", params={"voucher_id": "vch_0"}, headers=auditor)
    ).json()["items"]
    assert [t["kind"] for t in by_voucher] == ["redeem", "refund"]
    window = await service.client.get(
        "/v1/ledger/transactions",
        headers=auditor,
        params={"from": "2025-03-01T10:00:00+08:00", "to": "2025-03-01T10:00:01+08:00"},
    )
    assert len(window.json()["items"]) == 16
    assert (
        await service.client.get("/v1/ledger/transactions", params={"limit": 1001}, headers=auditor)
    ).status_code == 422


async def test_account_trace_and_reconciliation(service, owners):
    auditor = await _setup(service)
    account = (await service.client.get("/v1/ledger/accounts/merchant:m1", headers=auditor)).json()
    assert account["balance_fen"] == sum(
        p.get("debit_fen", 0) - p.get("credit_fen", 0)
        for t in account["items"]
        for p in t["postings"]
        if p["account"] == "merchant:m1"
    )
    fiscal = (await service.client.get("/v1/ledger/accounts/fiscal:iss_310000", headers=auditor)).json()
    assert fiscal["balance_fen"] == -120_000 + 1_000
    trace = (await service.client.get("/v1/ledger/vouchers/vch_0/trace", headers=auditor)).json()
    assert [t["kind"] for t in trace["items"]] == ["fund", "redeem", "refund"]
    books = (await service.client.get("/v1/ledger/campaigns/cmp_1/reconciliation", headers=auditor)).json()
    assert books["balanced"] is True
    assert (
        books["funded_fen"]
        == books["escrow_balance_fen"] + books["redeemed_fen"] - books["refunded_fen"] + books["returned_fen"]
    )
    assert {f["funder"]: (f["funded_fen"], f["returned_fen"]) for f in books["funders"]} == {
        "iss_310000": (60_000, 1_000),
        "iss_310104": (40_000, 500),
    }
    assert sum(f["escrow_balance_fen"] for f in books["funders"]) == books["escrow_balance_fen"]


async def test_checkpoints_and_proofs_verify_against_the_published_key(service, owners):
    auditor = await _setup(service)
    key = (await service.client.get("/v1/ledger/public-key")).json()
    pinned = base64.b64decode(key["public_key"])
    assert checkpoints.parse_public_key(key["pem"]) == pinned
    first = (await service.client.get("/v1/ledger/checkpoints", params={"tree_size": 5}, headers=auditor)).json()
    latest = (await service.client.get("/v1/ledger/checkpoints/latest", headers=auditor)).json()
    assert checkpoints.verify_document(first, pinned) == (5, bytes.fromhex(first["root_hash"]))
    assert checkpoints.verify_document(latest, pinned)[0] == 16
    txs = (await service.client.get("/v1/ledger/transactions", headers=auditor)).json()["items"]
    for tx in (txs[0], txs[4], txs[-1]):
        proof = (await service.client.get(f"/v1/ledger/transactions/{tx['id']}/proof", headers=auditor)).json()
        assert verify.verify_proof(tx, proof, pinned) == 16
    proof = (
        await service.client.get(
            f"/v1/ledger/transactions/{txs[3]['id']}/proof", params={"tree_size": 5}, headers=auditor
        )
    ).json()
    assert verify.verify_proof(txs[3], proof, pinned) == 5
    with pytest.raises(checkpoints.CheckpointError, match="replayed"):
        verify.verify_proof(txs[3], proof, pinned, trusted_tree_size=16)
    forged = proof | {"audit_path": list(reversed(proof["audit_path"]))}
    with pytest.raises(merkle.ProofError):
        verify.verify_proof(txs[3], forged, pinned)
    with pytest.raises(merkle.ProofError):
        verify.verify_proof(txs[4], proof, pinned)  # another transaction's proof
    consistency = (
        await service.client.get("/v1/ledger/consistency", params={"from": 5, "to": 16}, headers=auditor)
    ).json()
    merkle.verify_consistency(
        5,
        16,
        bytes.fromhex(first["root_hash"]),
        bytes.fromhex(latest["root_hash"]),
        [bytes.fromhex(h) for h in consistency["path"]],
    )
    listed = (await service.client.get("/v1/ledger/checkpoints", headers=auditor)).json()
    assert [c["tree_size"] for c in listed["items"]] == [16, 5]


async def test_export_streams_a_verifiable_csv(service, owners):
    auditor = await _setup(service)
    latest = (await service.client.post("/v1/ledger/checkpoints", headers=service.admin)).json()  # signs now
    response = await service.client.get("/v1/ledger/export", params={"format": "csv"}, headers=auditor)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    pinned = base64.b64decode(latest["public_key"])
    report = verify.verify_csv(io.StringIO(response.text), pinned, [latest])
    assert report.ok and report.transactions == 16


async def test_export_of_an_id_no_header_can_carry_answers_csv(service, owners):
    # Found by schemathesis: the id went into Content-Disposition and a non-latin-1 or control character made it 500.
    auditor = await _setup(service)
    odd = "\u00f3\U0009185e\x0b"
    response = await service.client.get("/v1/ledger/export", params={"campaign_id": odd}, headers=auditor)
    assert response.status_code == 200 and response.text.startswith("seq,id,kind")
    assert response.headers["content-disposition"] == 'attachment; filename="ledger-___.csv"'


async def test_gov_sees_only_its_own_campaigns(service, owners):
    await _setup(service)
    gov = service.auth(await service.token("gov", "iss_310000"))
    bound = service.auth(await service.token("auditor", "iss_310104"))
    assert (await service.client.get("/v1/ledger/transactions", headers=gov)).status_code == 403
    own = await service.client.get("/v1/ledger/transactions", params={"campaign_id": "cmp_0"}, headers=gov)
    assert own.status_code == 200 and all(t["refs"]["campaign_id"] == "cmp_0" for t in own.json()["items"])
    for path, params in [
        ("/v1/ledger/transactions", {"campaign_id": "cmp_1"}),
        ("/v1/ledger/campaigns/cmp_1/reconciliation", {}),
        ("/v1/ledger/accounts/escrow:cmp_1", {}),
        ("/v1/ledger/accounts/fiscal:iss_310104", {}),
        ("/v1/ledger/accounts/merchant:m1", {}),
        ("/v1/ledger/vouchers/vch_1/trace", {}),
        ("/v1/ledger/export", {"campaign_id": "cmp_1"}),
    ]:
        assert (await service.client.get(path, params=params, headers=gov)).status_code == 404, path
    assert (await service.client.get("/v1/ledger/accounts/fiscal:iss_310000", headers=gov)).status_code == 200
    assert (await service.client.get("/v1/ledger/campaigns/cmp_1/reconciliation", headers=bound)).status_code == 200
    assert (await service.client.get("/v1/ledger/transactions", headers=service.admin)).status_code == 403
    assert (await service.client.get("/v1/ledger/transactions")).status_code == 401


async def test_the_background_sequencer_catches_up(service):
    import asyncio

    await service.issuer("310000")
    await service.merchant("m1")
    engine = service.state.engine
    async with engine.begin() as conn:
        await ledger.open_account(conn, "escrow:cmp_bg")
        from .conftest import fund

        await ledger.post(conn, fund("cmp_bg", {"iss_310000": 10}))
    for _ in range(100):
        async with engine.connect() as conn:
            if await ledger.tree_size(conn) == 1:
                break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the sequencer did not catch up within 2 s")
