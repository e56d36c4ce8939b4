"""The service comes up over real PostgreSQL, reports ready, and answers unknown routes with problem+json."""


async def test_ready_and_health(service):
    assert (await service.client.get("/healthz")).status_code == 200
    response = await service.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_unknown_route_is_problem_json(service):
    response = await service.client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "NOT_FOUND"
