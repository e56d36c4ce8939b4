"""Eligibility without personal data (issue 18): attesters, attestations and what the engine keeps of them."""

from __future__ import annotations

import base64
import logging
import sys
import time
from datetime import UTC, datetime

import jwt
import pytest
import sqlalchemy as sa
from attestation_helpers import register
from campaign_helpers import contract, wallet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from voucher_engine.attestations import checks, jws, verifier
from voucher_engine.campaigns import issuance

ADULT = {"age": 30, "residence_region": "310104"}


def campaign_text(*, attested_by: str | None = None, distribution: str = "targeted", marker: bool = False) -> str:
    """Dining vouchers for adults living in Shanghai; `marker` adds a declared text attribute that must be present."""
    declare = "declare holder.district_name as text" if marker else ""
    present = "district_name is present" if marker else ""
    attested = f'holder attested by "{attested_by}"' if attested_by else ""
    return contract(f"""
        campaign "Attested dining" issuer 310000
        budget ¥20,000
        funders {{ 310000: 100% }}
        voucher threshold: spend ¥100, get ¥20 off
        quantity 1,000
        limit 1 per holder
        distribution {distribution}
        valid from 2025-01-01 00:00 to 2025-01-31 23:59 China time
        {declare}
        holder {{
            age >= 18
            residence_region within 310000
            {present}
        }}
        {attested}
    """)


async def claim(gov, campaign_id: str, body: dict):
    return await gov.post(f"/v1/campaigns/{campaign_id}/claims", body)


# ---------------------------------------------------------------------------------------------------------------
# The checks, one by one.


async def test_each_failed_check_is_refused_and_named(service, shanghai, operator):
    campaign = await shanghai.active(campaign_text(attested_by=operator.name))
    cid = campaign["id"]
    other = await register(service, "Another operator")
    retired = await register(service, operator.name)  # a second key of the same operator, then retired
    assert (await service.client.delete(f"/v1/attesters/{retired.attester_id}", headers=service.admin)).is_success
    now = int(time.time())
    w = wallet(1)
    forged = operator.token(cid, w, key=Ed25519PrivateKey.generate())
    good = operator.token(cid, w, id_hash="person-1")
    header, payload, signature = good.split(".")
    cases = {
        "signature": forged,
        "attester_unknown": operator.token(cid, w, iss="att_0000000000000000"),
        "attester_retired": retired.token(cid, w),
        "attester_not_named": other.token(cid, w),
        "expired": operator.token(cid, w, iat=now - 3600, exp=now - 120),
        "not_yet_valid": operator.token(cid, w, iat=now + 3600, exp=now + 7200),
        "audience": operator.token("cmp_0000000000000000", w),
        "subject": operator.token(cid, wallet(2)),
        "id_hash": operator.token(cid, w, id_hash="someone-else"),
        "payload": operator.token(cid, w, jti=None),
        "header": base64.urlsafe_b64encode(b'{"alg":"none","typ":"ve-attestation+jwt"}').decode().rstrip("=")
        + f".{payload}.{signature}",
        "malformed": "not.a.token",
    }
    for check, token in cases.items():
        body = {"wallet_id": w, "id_hash": "person-1", "attestation": token}
        response = await shanghai.issue(cid, [body])
        assert response["issued"] == 0, (check, response)
        [rejection] = response["rejected"]
        assert rejection == {
            "wallet_id": w,
            "code": "ATTESTATION_INVALID",
            "check": check,
            "detail": checks.CHECKS[check],
        }, check
    # The good one issues once; the same token again is a replay, in another issuance as in the same one.
    assert (await shanghai.issue(cid, [{"wallet_id": w, "id_hash": "person-1", "attestation": good}]))["issued"] == 1
    again = await shanghai.issue(cid, [{"wallet_id": w, "id_hash": "person-1", "attestation": good}])
    assert again["rejected"][0]["check"] == "replayed"
    twice = operator.token(cid, wallet(3))
    both = await shanghai.issue(cid, [{"wallet_id": wallet(3), "attestation": twice}] * 2)
    assert both["issued"] == 1 and both["rejected"][0]["check"] == "replayed"


async def test_claims_refuse_each_check_with_a_problem_that_names_it(service, shanghai, operator):
    campaign = await shanghai.active(campaign_text(attested_by=operator.name, distribution="first come"))
    cid = campaign["id"]
    now = int(time.time())
    secret = "Marker-Claims-Zq81"
    for check, token in {
        "signature": operator.token(cid, wallet(1), key=Ed25519PrivateKey.generate()),
        "expired": operator.token(cid, wallet(1), iat=now - 3600, exp=now - 120),
        "audience": operator.token("cmp_0000000000000000", wallet(1)),
        "subject": operator.token(cid, wallet(9), attributes={**ADULT, "district_name": secret}, eligible=None),
        "id_hash": operator.token(cid, wallet(1), id_hash="someone-else"),
    }.items():
        response = await claim(shanghai, cid, {"wallet_id": wallet(1), "attestation": token})
        problem = response.json()
        assert response.status_code == 422 and problem["code"] == "ATTESTATION_INVALID", response.text
        assert problem["check"] == check and problem["detail"] == checks.CHECKS[check]
        assert secret not in response.text and token.split(".")[1] not in response.text
    token = operator.token(cid, wallet(1))
    first = await claim(shanghai, cid, {"wallet_id": wallet(1), "attestation": token})
    assert first.status_code == 201, first.text
    replay = await claim(shanghai, cid, {"wallet_id": wallet(1), "attestation": token})
    assert replay.status_code == 422 and replay.json()["check"] == "replayed", replay.text
    async with service.state.engine.connect() as conn:
        uses = (await conn.execute(sa.text("SELECT wallet_id, decision, issuance_id FROM attestation_uses"))).all()
    assert [tuple(u) for u in uses] == [(wallet(1), "eligible", None)]


async def test_a_mandatory_attestation_campaign_refuses_raw_attributes(service, shanghai, operator):
    targeted = await shanghai.active(campaign_text(attested_by=operator.name))
    result = await shanghai.issue(
        targeted["id"], [{"wallet_id": wallet(1), "attributes": ADULT}, {"wallet_id": wallet(2)}]
    )
    assert [(r["code"], r["check"]) for r in result["rejected"]] == [("ATTESTATION_INVALID", "required")] * 2
    first_come = await shanghai.active(campaign_text(attested_by=operator.name, distribution="first come"))
    response = await claim(shanghai, first_come["id"], {"wallet_id": wallet(1), "attributes": ADULT})
    assert response.status_code == 422 and response.json()["check"] == "required", response.text
    lottery = await shanghai.active(campaign_text(attested_by=operator.name, distribution="lottery"))
    applicants = [
        {"wallet_id": wallet(1), "attributes": ADULT},
        {"wallet_id": wallet(2), "attestation": operator.token(lottery["id"], wallet(2))},
        {"wallet_id": wallet(3), "attestation": operator.token(lottery["id"], wallet(4))},
    ]
    drawn = await shanghai.post(
        f"/v1/campaigns/{lottery['id']}/issuances", {"lottery": {"applicants": applicants, "seed": "ab" * 16}}
    )
    assert drawn.status_code == 201, drawn.text
    body = drawn.json()
    assert body["issued"] == 1 and body["lottery"]["winners"] == [f"{wallet(2)}:"]
    assert sorted((r["wallet_id"], r["check"]) for r in body["rejected"]) == [
        (wallet(1), "required"),
        (wallet(3), "subject"),
    ]


async def test_unknown_attester_name_is_refused_at_campaign_creation(shanghai, operator):
    response = await shanghai.post("/v1/campaigns", {"source": campaign_text(attested_by="Nobody registered")})
    assert response.status_code == 422 and response.json()["code"] == "CONTRACT_INVALID", response.text
    [error] = response.json()["errors"]
    assert error["line"] == campaign_text(attested_by="x").splitlines().index('holder attested by "x"') + 1
    assert "Nobody registered" in error["message"]
    checked = await shanghai.post("/v1/contracts/check", {"source": campaign_text(attested_by=operator.name)})
    assert checked.json()["summary"]["attested_by"] == operator.name


async def test_an_attestation_with_attributes_is_evaluated_by_the_engine(shanghai, operator):
    campaign = await shanghai.active(campaign_text())
    cid = campaign["id"]
    young = operator.token(cid, wallet(1), eligible=None, attributes={"age": 16, "residence_region": "310104"})
    adult = operator.token(cid, wallet(2), eligible=None, attributes=ADULT)
    refused = operator.token(cid, wallet(3), eligible=False)
    result = await shanghai.issue(
        cid,
        [
            {"wallet_id": wallet(1), "attestation": young},
            {"wallet_id": wallet(2), "attestation": adult},
            {"wallet_id": wallet(3), "attestation": refused},
            {"wallet_id": wallet(4), "attributes": ADULT},  # raw attributes still work where not mandatory
        ],
    )
    assert result["issued"] == 2
    assert [{"wallet_id": r["wallet_id"], "code": r["code"]} for r in result["rejected"]] == [
        {"wallet_id": wallet(1), "code": "NOT_ELIGIBLE"},
        {"wallet_id": wallet(3), "code": "NOT_ELIGIBLE"},
    ]
    # The engine evaluated the attested attributes: the failed condition is named, never the value (issue 14).
    assert result["rejected"][0]["explain"][0]["rule"] == "age >= 18"
    assert "actual" not in result["rejected"][0]["explain"][0]


# ---------------------------------------------------------------------------------------------------------------
# No attribute at rest.


async def test_no_attribute_value_reaches_the_database_or_the_log(service, shanghai, operator, caplog):
    """Raw attributes (issuance and claim, where attestation is optional), an attestation carrying attributes and
    an eligible: true attestation all issue; then every table's text and the service's log are searched for the
    values sent (and for the tokens' payloads)."""
    caplog.set_level(logging.DEBUG)
    raw_marker, carried_marker = "Marker-Raw-Xk29", "Marker-Carried-Pq47"
    open_campaign = await shanghai.active(campaign_text(marker=True))
    attested = await shanghai.active(campaign_text(attested_by=operator.name, marker=True))
    first_come = await shanghai.active(campaign_text(marker=True, distribution="first come"))
    raw = {"age": 47, "residence_region": "310104", "district_name": raw_marker}
    carried = {"age": 52, "residence_region": "310104", "district_name": carried_marker}
    eligible = operator.token(attested["id"], wallet(2), id_hash="person-2")
    carrying = operator.token(open_campaign["id"], wallet(3), eligible=None, attributes=carried)
    issued = await shanghai.issue(
        open_campaign["id"],
        [{"wallet_id": wallet(1), "attributes": raw}, {"wallet_id": wallet(3), "attestation": carrying}],
    )
    assert issued["issued"] == 2, issued
    assert (
        await shanghai.issue(attested["id"], [{"wallet_id": wallet(2), "id_hash": "person-2", "attestation": eligible}])
    )["issued"] == 1
    claimed = await claim(shanghai, first_come["id"], {"wallet_id": wallet(4), "attributes": raw})
    assert claimed.status_code == 201, claimed.text
    # A refused claim's values do not reach the problem document either.
    refused = await claim(shanghai, first_come["id"], {"wallet_id": wallet(5), "attributes": {**raw, "age": 17}})
    assert refused.status_code == 422 and raw_marker not in refused.text and "17" not in refused.text

    needles = [raw_marker, carried_marker, eligible.split(".")[1], carrying.split(".")[1]]
    found: list[str] = []
    async with service.state.engine.connect() as conn:
        tables = (
            await conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"))
        ).scalars()
        for table in list(tables):
            rows = (await conn.execute(sa.text(f'SELECT t::text FROM "{table}" t'))).scalars()
            for text in rows:
                found += [f"{table}: {needle}" for needle in needles if needle in text]
        assert (await conn.execute(sa.text("SELECT count(*) FROM vouchers"))).scalar() == 4
        uses = (await conn.execute(sa.text("SELECT count(*) FROM attestation_uses"))).scalar()
    assert uses == 2
    assert not found, found
    log = "\n".join(record.getMessage() for record in caplog.records)
    assert not [needle for needle in needles if needle in log]


# ---------------------------------------------------------------------------------------------------------------
# Key rotation and audit.


async def test_key_rotation_keeps_old_attestations_verifiable_and_refuses_new_ones(service, shanghai, operator):
    campaign = await shanghai.active(campaign_text(attested_by=operator.name))
    cid = campaign["id"]
    before = operator.token(cid, wallet(1), iat=int(time.time()) - 30)
    assert (await shanghai.issue(cid, [{"wallet_id": wallet(1), "attestation": before}]))["issued"] == 1
    # Rotation: a new key under the same name, then the old one retired.
    new = await register(service, operator.name)
    retired = await service.client.delete(f"/v1/attesters/{operator.attester_id}", headers=service.admin)
    assert retired.status_code == 200 and retired.json()["status"] == "retired", retired.text
    late = operator.token(cid, wallet(2), iat=int(time.time()) + 30)
    refused = await shanghai.issue(cid, [{"wallet_id": wallet(2), "attestation": late}])
    assert refused["rejected"][0]["check"] == "attester_retired"
    assert (await shanghai.issue(cid, [{"wallet_id": wallet(2), "attestation": new.token(cid, wallet(2))}]))[
        "issued"
    ] == 1
    # For audit, the retired key's earlier attestation still verifies, with what the engine recorded of it.
    auditor = await service.token("auditor")
    audit = await service.client.post(
        "/v1/attestations/verify", json={"attestation": before}, headers=service.auth(auditor)
    )
    assert audit.status_code == 200, audit.text
    answer = audit.json()
    assert answer["signature_valid"] and answer["attester_status"] == "retired"
    assert answer["signed_before_retirement"] is True and answer["use"]["decision"] == "eligible"
    assert answer["campaign_id"] == cid and answer["wallet_id"] == wallet(1)
    late_audit = (
        await service.client.post("/v1/attestations/verify", json={"attestation": late}, headers=service.auth(auditor))
    ).json()
    assert late_audit["signature_valid"] and late_audit["signed_before_retirement"] is False
    assert late_audit["use"] is None
    forged = operator.token(cid, wallet(1), key=Ed25519PrivateKey.generate())
    assert not (
        await service.client.post("/v1/attestations/verify", json={"attestation": forged}, headers=service.admin)
    ).json()["signature_valid"]
    listed = (await service.client.get("/v1/attesters", headers=service.auth(auditor))).json()["items"]
    assert {(a["id"], a["status"]) for a in listed} == {(operator.attester_id, "retired"), (new.attester_id, "active")}


async def test_attesters_refuse_bad_keys_and_duplicates(service):
    bad = await service.client.post(
        "/v1/attesters",
        json={"name": "x", "public_key": base64.b64encode(b"short" * 9).decode()},
        headers=service.admin,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR", bad.text
    # A point of small order (here the neutral element) is 32 bytes but no key: nothing it "signs" could be trusted.
    small = base64.b64encode(b"\x01" + bytes(31)).decode()
    refused = await service.client.post("/v1/attesters", json={"name": "x", "public_key": small}, headers=service.admin)
    assert refused.status_code == 422 and refused.json()["code"] == "VALIDATION_ERROR", refused.text
    public = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    body = {"name": "Operator", "public_key": public}
    assert (await service.client.post("/v1/attesters", json=body, headers=service.admin)).status_code == 201
    again = await service.client.post("/v1/attesters", json=body, headers=service.admin)
    assert again.status_code == 409 and again.json()["code"] == "CONFLICT"
    missing = await service.client.delete("/v1/attesters/att_nope", headers=service.admin)
    assert missing.status_code == 404


# ---------------------------------------------------------------------------------------------------------------
# The JWS itself, against an independent implementation (PyJWT).


def test_tokens_pyjwt_makes_verify_here_and_tampered_ones_fail_both():
    key = Ed25519PrivateKey.generate()
    claims = {"iss": "att_1", "sub": "1" * 16, "aud": "cmp_1", "iat": 1, "exp": 2, "jti": "j", "eligible": True}
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": "ve-attestation+jwt"})
    parsed = jws.parse(token)
    assert parsed.claims == claims and jws.signature_ok(parsed, key.public_key().public_bytes_raw())
    header, payload, signature = token.split(".")
    tampered_payload = jws.sign({**claims, "sub": "2" * 16}, key).split(".")[1]
    for bad in (
        f"{header}.{tampered_payload}.{signature}",
        f"{header}.{payload}.{signature[:40]}{'B' if signature[40] == 'A' else 'A'}{signature[41:]}",
        jws.sign(claims, Ed25519PrivateKey.generate()),
    ):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(bad, key.public_key(), algorithms=["EdDSA"], options={"verify_exp": False, "verify_aud": False})
        assert not jws.signature_ok(jws.parse(bad), key.public_key().public_bytes_raw())
    for malformed, check in (
        (token + "=", "malformed"),
        (token.replace(".", "..", 1), "malformed"),
        (jwt.encode(claims, "s" * 32, algorithm="HS256"), "malformed"),  # a 32-byte HMAC is not a 64-byte signature
        ("eyJhbGciOiJub25lIn0." + payload + "." + signature, "header"),
    ):
        with pytest.raises(jws.Malformed) as refused:
            jws.parse(malformed)
        assert refused.value.check == check


# ---------------------------------------------------------------------------------------------------------------
# Large lists: attestations verified by worker processes (attestations/verifier.py).


@pytest.fixture
def small_slices(monkeypatch):
    """Worker processes from the first slice of 100 attestations on, in slices of 300 holders, the uses written
    every 250 between COPYs of vouchers: a list of a thousand goes through the same pipeline as one of a million."""
    monkeypatch.setattr(issuance, "USES_WRITE_EVERY", 250)
    monkeypatch.setattr(verifier, "MIN_TOKENS", 100)
    monkeypatch.setattr(verifier, "SLICE", 300)
    monkeypatch.setattr(verifier, "WORKERS", 2)
    monkeypatch.setattr(verifier, "START_STEP", 0)  # wait for the workers rather than verify while they start


async def _large_list(operator, cid: str, count: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """`count` attested holders with a forged signature, another wallet's token and an expired one among them,
    and, last, wallet 5 again with its token (spent slices before): the list, and (wallet, check) refused."""
    now = int(time.time())
    bad = {
        wallet(77): ("signature", operator.token(cid, wallet(77), key=Ed25519PrivateKey.generate())),
        wallet(350): ("subject", operator.token(cid, wallet(351))),
        wallet(640): ("expired", operator.token(cid, wallet(640), iat=now - 3600, exp=now - 120)),
    }
    holders = [
        {
            "wallet_id": wallet(n),
            "id_hash": f"person-{n}",
            "attestation": bad[wallet(n)][1] if wallet(n) in bad else operator.token(cid, wallet(n)),
        }
        for n in range(1, count + 1)
    ]
    holders.append(dict(holders[4]))
    refused = [(w, check) for w, (check, _) in bad.items()] + [(wallet(5), "replayed")]
    return holders, sorted(refused)


async def test_a_large_list_is_verified_by_worker_processes_and_its_bad_tokens_refused(
    service, shanghai, operator, small_slices, caplog
):
    caplog.set_level(logging.INFO, logger="voucher_engine.attestations.verifier")
    campaign = await shanghai.active(campaign_text(attested_by=operator.name))
    cid = campaign["id"]
    holders, refused = await _large_list(operator, cid, 1_000)
    result = await shanghai.issue(cid, holders)
    assert result["issued"] == 1_000 - 3
    assert sorted((r["wallet_id"], r["check"]) for r in result["rejected"]) == refused
    assert all(
        r["code"] == "ATTESTATION_INVALID" and r["detail"] == checks.CHECKS[r["check"]] for r in result["rejected"]
    )
    # Every token of the list went to the workers (none was verified in the issuance's process).
    assert "attestations verified: 1001 by 2 worker processes, 0 in the issuance's process" in caplog.text
    async with service.state.engine.connect() as conn:
        uses = await conn.scalar(sa.text("SELECT count(*) FROM attestation_uses WHERE campaign_id = :c"), {"c": cid})
        vouchers = await conn.scalar(sa.text("SELECT count(*) FROM vouchers WHERE campaign_id = :c"), {"c": cid})
    assert uses == vouchers == result["issued"]
    # A lottery's applicants go through the workers too; the forged one is excluded before the draw.
    lottery = await shanghai.active(campaign_text(attested_by=operator.name, distribution="lottery"))
    applicants = [
        {"wallet_id": wallet(n), "attestation": operator.token(lottery["id"], wallet(n))} for n in range(1, 151)
    ]
    applicants[9]["attestation"] = operator.token(lottery["id"], wallet(10), key=Ed25519PrivateKey.generate())
    caplog.clear()
    drawn = await shanghai.post(
        f"/v1/campaigns/{lottery['id']}/issuances", {"lottery": {"applicants": applicants, "seed": "cd" * 16}}
    )
    assert drawn.status_code == 201, drawn.text
    assert drawn.json()["issued"] == 149
    assert [(r["wallet_id"], r["check"]) for r in drawn.json()["rejected"]] == [(wallet(10), "signature")]
    assert "attestations verified: 150 by 2 worker processes" in caplog.text


@pytest.mark.parametrize(
    "worker",
    [
        ["/nonexistent/python3"],  # cannot be started
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read(100)"],  # dies in the middle of a request
    ],
    ids=["not-started", "died"],
)
async def test_when_worker_processes_fail_the_issuance_verifies_itself_with_the_same_outcome(
    service, shanghai, operator, small_slices, monkeypatch, caplog, worker
):
    monkeypatch.setattr(verifier, "command", lambda: worker)
    caplog.set_level(logging.INFO, logger="voucher_engine.attestations.verifier")
    campaign = await shanghai.active(campaign_text(attested_by=operator.name))
    holders, refused = await _large_list(operator, campaign["id"], 700)
    result = await shanghai.issue(campaign["id"], holders)
    assert result["issued"] == 700 - 3
    assert sorted((r["wallet_id"], r["check"]) for r in result["rejected"]) == refused
    assert "attestation verifier processes failed" in caplog.text
    assert "by 2 worker processes" not in caplog.text
    # The warning names what failed, never a token or what it carries.
    assert not [h for h in holders if h["attestation"].split(".")[1] in caplog.text]


async def test_verifier_processes_give_the_verdicts_the_issuance_would_give_itself(monkeypatch):
    """Slices verified partly here while the workers start, then by them: each token's verdict, in order, is
    `checks.verify_all`'s on the whole list."""
    monkeypatch.setattr(verifier, "MIN_TOKENS", 50)
    monkeypatch.setattr(verifier, "SLICE", 200)
    monkeypatch.setattr(verifier, "WORKERS", 2)
    monkeypatch.setattr(verifier, "START_STEP", 5)
    key, now = Ed25519PrivateKey.generate(), int(time.time())
    public = key.public_key().public_bytes_raw()
    registry = {"att_1": checks.Attester("att_1", "Operator", public, datetime.now(UTC), None)}
    holders: list[tuple] = []
    for n in range(1, 1_001):
        claims = {"iss": "att_1", "sub": wallet(n), "aud": "cmp_1", "iat": now, "exp": now + 60, "jti": f"j{n}"}
        signer = Ed25519PrivateKey.generate() if n % 97 == 0 else key  # a forged one now and then
        token = jws.sign({**claims, "eligible": True} if n % 5 else {**claims, "attributes": {"age": n}}, signer)
        holders.append((wallet(n), None, token if n % 7 else ADULT if n % 2 else "not.a.token"))
    gate = checks.Gate(
        campaign_id="cmp_1", check_holder=lambda a: [], attester_name=None, attesters=registry, now_s=now
    )

    async def chunks():
        for start in range(0, len(holders), 450):
            yield holders[start : start + 450]

    got: list = []
    async with verifier.Verifier(gate) as pool:
        async for chunk, verdicts in pool.chunks(chunks()):
            assert len(chunk) == len(verdicts) <= 200
            got += verdicts
    tokens = [h for h in holders if type(h[2]) is str]
    expected = iter(checks.verify_all(tokens, registry, "cmp_1", None, now))
    assert got == [next(expected) if type(h[2]) is str else None for h in holders]
    assert pool.by_workers > 0 and pool.by_workers + pool.inline == len(tokens)
    assert sum(1 for v in got if v == "signature") == sum(1 for n in range(1, 1_001) if n % 97 == 0 and n % 7)
