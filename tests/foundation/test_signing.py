"""POS request signing: a valid signature passes; wrong, stale, replayed, tampered or revoked ones do not —
and a nonce stays spent across a restart of the service."""

import time

from voucher_engine.merchants.client import signed_headers

PATH = "/v1/pos/ping"


async def _merchant_with_key(service):
    await service.merchant("till-shop")
    return await service.pos_key("till-shop")


async def _ping(service, headers, path=PATH):
    return await service.client.get(path, headers=headers)


async def test_valid_signature_identifies_the_merchant(service):
    key = await _merchant_with_key(service)
    response = await _ping(service, signed_headers(key["key_id"], key["secret"], "GET", PATH, b""))
    assert response.status_code == 200, response.text
    assert response.json()["merchant_id"] == "till-shop"


async def test_wrong_signature_is_refused(service):
    key = await _merchant_with_key(service)
    headers = signed_headers(key["key_id"], "00" * 32, "GET", PATH, b"")
    response = await _ping(service, headers)
    assert response.status_code == 401 and response.json()["code"] == "BAD_SIGNATURE"


async def test_signature_over_another_path_or_body_is_refused(service):
    key = await _merchant_with_key(service)
    headers = signed_headers(key["key_id"], key["secret"], "GET", PATH + "?x=1", b"")
    assert (await _ping(service, headers)).json()["code"] == "BAD_SIGNATURE"
    headers = signed_headers(key["key_id"], key["secret"], "GET", PATH, b"{}")
    assert (await _ping(service, headers)).json()["code"] == "BAD_SIGNATURE"
    headers = signed_headers(key["key_id"], key["secret"], "POST", PATH, b"")
    assert (await _ping(service, headers)).json()["code"] == "BAD_SIGNATURE"


async def test_stale_timestamps_are_refused_both_ways(service):
    key = await _merchant_with_key(service)
    for skew in (-301, 301, -10_000):
        headers = signed_headers(key["key_id"], key["secret"], "GET", PATH, b"", timestamp=int(time.time()) + skew)
        response = await _ping(service, headers)
        assert response.status_code == 401 and response.json()["code"] == "STALE_REQUEST", skew
    fresh = signed_headers(key["key_id"], key["secret"], "GET", PATH, b"", timestamp=int(time.time()) - 290)
    assert (await _ping(service, fresh)).status_code == 200


async def test_test_clock_does_not_move_the_signing_window(service):
    key = await _merchant_with_key(service)
    moved = await service.client.put("/v1/test/clock", json={"now": "2025-01-15T12:00:00+08:00"}, headers=service.admin)
    assert moved.status_code == 200
    response = await _ping(service, signed_headers(key["key_id"], key["secret"], "GET", PATH, b""))
    assert response.status_code == 200, response.text


async def test_reused_nonce_is_refused(service):
    key = await _merchant_with_key(service)
    headers = signed_headers(key["key_id"], key["secret"], "GET", PATH, b"", nonce="nonce-0123456789abcd")
    assert (await _ping(service, headers)).status_code == 200
    replay = await _ping(service, headers)
    assert replay.status_code == 401 and replay.json()["code"] == "REPLAYED_REQUEST"


async def test_reused_nonce_is_refused_after_a_restart(database_url, tmp_path):
    from service_support import start_service

    first, close = await start_service(database_url, tmp_path / "data")
    try:
        key = await _merchant_with_key(first)
        headers = signed_headers(key["key_id"], key["secret"], "GET", PATH, b"", nonce="restart-nonce-000001")
        assert (await _ping(first, headers)).status_code == 200
    finally:
        await close()
    second, close = await start_service(database_url, tmp_path / "data")
    try:
        replay = await _ping(second, headers)
        assert replay.status_code == 401 and replay.json()["code"] == "REPLAYED_REQUEST"
    finally:
        await close()


async def test_malformed_and_missing_headers(service):
    key = await _merchant_with_key(service)
    good = signed_headers(key["key_id"], key["secret"], "GET", PATH, b"")
    missing = dict(good)
    del missing["X-VE-Signature"]
    assert (await _ping(service, missing)).json()["code"] == "UNAUTHENTICATED"
    short_nonce = {**good, "X-VE-Nonce": "short"}
    assert (await _ping(service, short_nonce)).json()["code"] == "BAD_SIGNATURE"
    uppercase_sig = {**good, "X-VE-Signature": good["X-VE-Signature"].upper()}
    assert (await _ping(service, uppercase_sig)).json()["code"] == "BAD_SIGNATURE"
    bad_timestamp = {**good, "X-VE-Timestamp": "yesterday"}
    assert (await _ping(service, bad_timestamp)).json()["code"] == "STALE_REQUEST"


async def test_revoked_and_unknown_keys_are_refused(service):
    key = await _merchant_with_key(service)
    await service.client.delete(f"/v1/merchants/till-shop/keys/{key['key_id']}", headers=service.admin)
    response = await _ping(service, signed_headers(key["key_id"], key["secret"], "GET", PATH, b""))
    assert response.status_code == 401 and response.json()["code"] == "BAD_SIGNATURE"
    unknown = await _ping(service, signed_headers("key_unknown", key["secret"], "GET", PATH, b""))
    assert unknown.json()["code"] == "BAD_SIGNATURE"


async def test_bearer_tokens_do_not_open_signed_endpoints(service):
    response = await service.client.get(PATH, headers=service.admin)
    assert response.status_code == 401
