"""Security beyond the matrix: signed refunds replayed, stale or tampered; credentials never logged, never echoed
and never returned twice; ledger rows that the application's own database role cannot change.

(The matrix is test_security_matrix.py; code guessing is test_code_guessing.py; signing on the ping and redemption
endpoints, including a nonce replayed across a restart, is in tests/foundation/test_signing.py and
tests/redemption/test_codes.py.)
"""

from __future__ import annotations

import logging
import time
import uuid

import asyncpg
import orjson
import pytest
from reliability_helpers import WALLET, Till, holder, start_service
from sqlalchemy.engine import make_url

from voucher_engine.db.engine import plain_url
from voucher_engine.merchants.client import signed_headers


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text
    return response.json()


@pytest.fixture
async def paid(world):
    """A settled ¥120 dining order at xuhui-noodles: (till, redemption)."""
    await world.set_clock("2025-01-15T12:00:00+08:00")
    campaign = await world.launch("shanghai-dining-2025.contract", [holder(WALLET)])
    till = world.tills["xuhui-noodles"]
    response = await till.redeem(await world.code(campaign), 12000)
    assert response.status_code == 201, response.text
    return till, response.json()


async def test_signed_refunds_replayed_stale_or_tampered_are_refused_and_change_nothing(world, paid):
    till, redemption = paid
    client = world.service.client
    path = f"/v1/redemptions/{redemption['id']}/refunds"
    body = orjson.dumps({"refund_id": "rf-sec-1", "amount_fen": 12000, "reason": "returned"})

    stale = signed_headers(till.key_id, till.secret, "POST", path, body, timestamp=int(time.time()) - 301)
    _problem(await client.post(path, content=body, headers=stale), 401, "STALE_REQUEST")
    future = signed_headers(till.key_id, till.secret, "POST", path, body, timestamp=int(time.time()) + 301)
    _problem(await client.post(path, content=body, headers=future), 401, "STALE_REQUEST")
    # The amount raised after signing; the path pointed at another redemption after signing.
    signed = signed_headers(till.key_id, till.secret, "POST", path, body)
    _problem(await client.post(path, content=body.replace(b"12000", b"11999"), headers=signed), 401, "BAD_SIGNATURE")
    other_path = path.replace(redemption["id"][-4:], "0000")
    _problem(await client.post(other_path, content=body, headers=signed), 401, "BAD_SIGNATURE")
    # Another merchant's key id with this merchant's secret (and the reverse).
    grocer = world.tills["xuhui-grocer"]
    swapped = signed_headers(grocer.key_id, till.secret, "POST", path, body)
    _problem(await client.post(path, content=body, headers=swapped), 401, "BAD_SIGNATURE")
    # Properly signed by another merchant: that merchant has no such redemption.
    _problem(
        await client.post(path, content=body, headers=signed_headers(grocer.key_id, grocer.secret, "POST", path, body)),
        404,
        "NOT_FOUND",
    )
    fetched = await till.send("GET", f"/v1/redemptions/{redemption['id']}")
    assert fetched.json()["refunded_fen"] == 0  # none of the refused requests did anything

    first = await client.post(path, content=body, headers=signed)
    assert first.status_code == 201, first.text
    _problem(await client.post(path, content=body, headers=signed), 401, "REPLAYED_REQUEST")
    # A retry is a new request (new nonce) with the same refund_id: the same refund, not a second one.
    retry = await till.refund(redemption["id"], 12000, refund_id="rf-sec-1", reason="returned")
    assert retry.status_code == 200 and retry.json() == first.json()
    fetched = await till.send("GET", f"/v1/redemptions/{redemption['id']}")
    assert fetched.json()["refunded_fen"] == 12000 and fetched.json()["subsidy_refunded_fen"] == 2000


async def test_credentials_are_never_logged_echoed_or_returned_twice(world, paid, caplog):
    """Every bearer token and POS secret made in this test, and every signature sent, is searched for in the
    service's logs (at DEBUG, every logger) and in every answer the service gives to reads."""
    caplog.set_level(logging.DEBUG)
    service = world.service
    till, redemption = paid
    secrets_made = [service.admin_token, till.secret, *world.gov.values()]
    auditor = await service.token("auditor")
    secrets_made.append(auditor)
    key = await service.pos_key("xuhui-grocer")
    again = await service.pos_key("xuhui-grocer")
    assert key["secret"] != again["secret"] and key["key_id"] != again["key_id"]  # a new key each time
    secrets_made += [key["secret"], again["secret"]]

    # Use them, fail with them, and make the service log warnings and errors.
    signatures = []
    for _ in range(3):
        headers = signed_headers(till.key_id, till.secret, "GET", "/v1/pos/ping", b"")
        signatures.append(headers["X-VE-Signature"])
        assert (await service.client.get("/v1/pos/ping", headers=headers)).status_code == 200
    wrong = signed_headers(till.key_id, key["secret"], "GET", "/v1/pos/ping", b"")
    signatures.append(wrong["X-VE-Signature"])
    refused = await service.client.get("/v1/pos/ping", headers=wrong)
    assert till.secret not in refused.text and key["secret"] not in refused.text
    almost = auditor[:-1] + ("A" if auditor[-1] != "A" else "B")
    bad = await service.client.get("/v1/campaigns", headers=service.auth(almost))
    assert bad.status_code == 401 and almost not in bad.text  # the offered token is not echoed
    for code in ("V1" + "Z" * 54, "junk"):
        await till.redeem(code, 12000)

    reads = [
        "/v1/issuers",
        "/v1/merchants",
        "/v1/merchants/xuhui-grocer",
        "/v1/merchants/xuhui-noodles",
        "/v1/campaigns",
        f"/v1/wallets/{WALLET}/vouchers",
        "/openapi.json",
        "/v1/test/clock",
    ]
    texts = [(await service.client.get(path, headers=service.admin)).text for path in reads]
    texts += [
        (await service.client.get(path, headers=service.auth(auditor))).text
        for path in (
            "/v1/ledger/transactions",
            f"/v1/ledger/accounts/merchant:{till.merchant_id}",
            "/v1/ledger/export?format=csv",
        )
    ]
    texts.append((await till.send("GET", f"/v1/redemptions/{redemption['id']}")).text)
    logged = caplog.text
    assert logged, "nothing was logged at all: the capture is not working"
    for secret in [*secrets_made, *signatures]:
        assert secret not in logged, "a credential was logged"
        for text in texts:
            assert secret not in text, "a credential was returned again"
    # Neither the tokens nor the key secrets are in the database either (tokens hashed, secrets derived).
    async with service.state.engine.connect() as conn:
        dump = str((await conn.exec_driver_sql("SELECT * FROM api_tokens")).all())
        dump += str((await conn.exec_driver_sql("SELECT * FROM merchant_keys")).all())
    for secret in secrets_made:
        assert secret not in dump


LEDGER_STATEMENTS = [
    "UPDATE ledger_transactions SET amounts_fen = '{-1,1}'",
    "DELETE FROM ledger_transactions",
    "UPDATE ledger_sequence SET hash = prev_hash",
    "DELETE FROM ledger_sequence",
    "DELETE FROM ledger_entries",
    "UPDATE ledger_tree SET hash = hash",
    "DELETE FROM ledger_checkpoints",
    "DELETE FROM ledger_accounts",
    "UPDATE ledger_accounts SET account = 'merchant:forged' WHERE kind = 'merchant'",
    "DELETE FROM ledger_campaign_totals",
]
# What an application role cannot do at all (only the tables' owner or a superuser may).
OWNER_ONLY = [
    "TRUNCATE ledger_transactions CASCADE",
    "ALTER TABLE ledger_transactions DISABLE TRIGGER ALL",
    "DROP TRIGGER ledger_transactions_append_only ON ledger_transactions",
    "SET session_replication_role = replica",
    "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
]


async def test_ledger_rows_cannot_be_changed_by_the_applications_own_role(world, paid, database_url, tmp_path):
    """A non-superuser role with every privilege the application needs (it runs the service below) cannot update
    or delete a ledger row, nor switch the guards off; the superuser the tests run as is stopped by the same
    triggers (tests/ledger/test_books.py checks each table for it)."""
    service = world.service
    made = await service.client.post("/v1/ledger/checkpoints", headers=service.admin)
    assert made.status_code == 201, made.text  # every ledger table has rows now
    role = f"ve_app_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    database = make_url(database_url).database
    superuser = await asyncpg.connect(plain_url(database_url))
    try:
        await superuser.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'")
        await superuser.execute(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        await superuser.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        await superuser.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        await superuser.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}")
        app_url = make_url(database_url).set(username=role, password=password).render_as_string(hide_password=False)

        # The role is enough to run the service: a till redeems through it.
        as_app, close = await start_service(app_url, service.settings.data_dir, test_clock=True)
        try:
            key = await as_app.pos_key("xuhui-noodles")
            till = Till(as_app, "xuhui-noodles", key["key_id"], key["secret"])
            voucher_holder = holder("6700000000000001")
            issued = await service.client.post(
                f"/v1/campaigns/{paid[1]['campaign_id']}/issuances",
                json={"holders": [voucher_holder]},
                headers=service.auth(world.gov["310000"]),
            )
            assert issued.status_code == 201, issued.text
            code = await world.code(paid[1]["campaign_id"], "6700000000000001")
            redeemed = await till.redeem(code, 12000, wallet="6700000000000001")
            assert redeemed.status_code == 201, redeemed.text
        finally:
            await close()

        app = await asyncpg.connect(plain_url(app_url))
        try:
            assert not await app.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            before = await app.fetchval("SELECT count(*) FROM ledger_transactions")
            for statement in LEDGER_STATEMENTS:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only|are kept"):
                    await app.execute(statement)
            for statement in OWNER_ONLY:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute(statement)
            assert await app.fetchval("SELECT count(*) FROM ledger_transactions") == before
        finally:
            await app.close()
        # The superuser is stopped by the same triggers (it could switch them off: the service must never run
        # as one).
        for statement in LEDGER_STATEMENTS[:2]:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await superuser.execute(statement)
    finally:
        await superuser.execute(f"DROP OWNED BY {role}")
        await superuser.execute(f"DROP ROLE {role}")
        await superuser.close()
