"""The test clock exists only with --test-clock, and moves business time for the whole engine."""

from datetime import datetime

from voucher_engine import clock


async def test_without_the_flag_the_clock_endpoint_does_not_exist(database_url, tmp_path):
    from service_support import start_service

    svc, close = await start_service(database_url, tmp_path / "data", test_clock=False)
    try:
        response = await svc.client.put("/v1/test/clock", json={"now": "2025-01-01T00:00:00+08:00"}, headers=svc.admin)
        assert response.status_code == 404
    finally:
        await close()


async def test_set_and_reset(service):
    response = await service.client.put(
        "/v1/test/clock", json={"now": "2025-02-01T10:00:00+08:00"}, headers=service.admin
    )
    assert response.status_code == 200
    now = datetime.fromisoformat(response.json()["now"])
    assert abs((now - datetime.fromisoformat("2025-02-01T10:00:00+08:00")).total_seconds()) < 5
    assert abs((clock.now() - now).total_seconds()) < 5
    naive = await service.client.put("/v1/test/clock", json={"now": "2025-02-01T10:00:00"}, headers=service.admin)
    assert naive.status_code == 422
    reset = await service.client.delete("/v1/test/clock", headers=service.admin)
    assert reset.status_code == 204
    assert abs((clock.now() - clock.real_now()).total_seconds()) < 1


async def test_other_workers_follow_the_shared_clock(service):
    """A second app over the same database (another worker) sees the time set through the first."""
    from service_support import start_service

    other, close = await start_service(service.settings.database_url, service.settings.data_dir, test_clock=True)
    try:
        await service.client.put("/v1/test/clock", json={"now": "2030-06-01T00:00:00+08:00"}, headers=service.admin)
        clock.set_offset(clock.offset() * 0)  # forget it locally, as a separate process would never have known it
        response = await other.client.get("/v1/test/clock", headers=other.admin)
        assert response.json()["now"].startswith("2030-05-31T16:00") or response.json()["now"].startswith("2030-06")
    finally:
        await service.client.delete("/v1/test/clock", headers=service.admin)
        await close()
