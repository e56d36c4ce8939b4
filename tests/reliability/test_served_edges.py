"""Attacks on a served instance (`voucher-engine serve`, one worker, so that one event loop is what is attacked):
the contract checker as a CPU weapon, and huge numbers. The service must keep answering `/healthz` throughout,
and every answer must be a 2xx or a problem+json 4xx."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
from reliability_helpers import CONTRACTS, RealServer, create_database, drop_database, start_service

BENCH = Path(__file__).resolve().parents[2] / "loadtest" / "bench_checker.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_checker", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Served:
    def __init__(self, base_url: str, auditor: dict[str, str], gov: dict[str, str]):
        self.base_url = base_url
        self.auditor = auditor
        self.gov = gov


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(server_url, template_database, tmp_path_factory):
    name, url = await create_database(server_url, template_database)
    data_dir = tmp_path_factory.mktemp("served-edges") / "data"
    service, close = await start_service(url, data_dir, test_clock=True)
    server = None
    try:
        issuer = await service.issuer("310000")
        auditor = service.auth(await service.token("auditor"))
        gov = service.auth(await service.token("gov", issuer))
        server = RealServer(url, data_dir, workers=1)
        await server.ready()
        yield Served(server.base_url, auditor, gov)
    finally:
        if server is not None:
            server.stop()
        await close()
        await drop_database(server_url, name)


def _problem_or_ok(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.headers


async def test_healthz_keeps_answering_while_worst_case_contracts_are_checked(served):
    """Every generated worst case, three times over, at once; meanwhile /healthz is asked every 50 ms. Before, one
    64 KiB contract of `within` sets held the worker for more than ten minutes."""
    bench = _bench()
    sources = [make() for make in bench.GENERATORS.values()] * 3
    latencies_ms: list[float] = []
    done = asyncio.Event()

    async def probe(http: httpx.AsyncClient) -> None:
        while not done.is_set():
            started = time.perf_counter()
            response = await http.get("/healthz")
            assert response.status_code == 200
            latencies_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
        # Warm: the worker's first request of a kind pays for its connections and caches, not for the checker.
        warm = await http.post("/v1/contracts/check", json={"source": sources[0]}, headers=served.auditor)
        _problem_or_ok(warm)
        prober = asyncio.create_task(probe(http))
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(http.post("/v1/contracts/check", json={"source": s}, headers=served.auditor) for s in sources)
        )
        took_s = time.perf_counter() - started
        done.set()
        await prober
    for response in answers:
        _problem_or_ok(response)
    assert {r.status_code for r in answers} <= {200, 422}
    assert took_s < 30, took_s  # 33 checks of at most tens of milliseconds each, on a shared machine
    # Before, /healthz did not answer for minutes. Now the checks run on a thread of their own and /healthz waits
    # at most for the GIL's switch interval and its turn among the requests; the bounds allow a busy shared machine
    # (at load 10 on 2 cores the slowest answer was 2.6 s, the median 170 ms).
    latencies_ms.sort()
    assert latencies_ms[len(latencies_ms) // 2] < 500 and latencies_ms[-1] < 5000, latencies_ms


async def test_a_contract_numeral_of_thousands_of_digits_is_422(served):
    dining = (CONTRACTS / "shanghai-dining-2025.contract").read_text()
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        for before, after in (
            ("quantity 500,000", "quantity " + "9" * 4_301),
            ("310000: 100%", "310000: " + "1" * 5_000 + "%"),
        ):
            for path in ("/v1/contracts/check", "/v1/campaigns"):
                source = dining.replace(before, after)
                response = await http.post(path, json={"source": source}, headers=served.gov)
                assert response.status_code == 422, response.text[:300]
                assert response.json()["code"] == "CONTRACT_INVALID"


# -- request heads ------------------------------------------------------------------------------------------------


async def _raw(base_url: str, head: bytes) -> tuple[int, bytes]:
    """Send `head` on a connection of its own; answer the status and the body of the one response read back."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server refused and stopped reading: its answer is still there to read
        raw = await asyncio.wait_for(reader.read(-1), timeout=20)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), body


def _request(*headers: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + b"".join(headers) + b"\r\n"


@pytest.mark.parametrize("size", [1_048_576, 100_000])  # over many reads; likely in one read with its end
async def test_a_one_megabyte_header_is_431(served, size):
    status, body = await _raw(served.base_url, _request(b"X-Big: " + b"a" * size + b"\r\n"))
    assert status == 431
    document = orjson.loads(body)
    assert document["code"] == "HEADERS_TOO_LARGE" and document["status"] == 431
    assert "bytes" in document["detail"]


async def test_twenty_thousand_headers_are_431(served):
    status, body = await _raw(served.base_url, _request(*(b"X-H%d: v\r\n" % i for i in range(20_000))))
    assert status == 431 and orjson.loads(body)["code"] == "HEADERS_TOO_LARGE"
    # Many small headers, within the size: the count is bounded on its own.
    status, body = await _raw(served.base_url, _request(*(b"a: b\r\n" for _ in range(150))))
    assert status == 431 and "header lines" in orjson.loads(body)["detail"]


async def test_ordinary_heads_still_pass_and_the_server_lives_on(served):
    status, body = await _raw(served.base_url, _request(*(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(60))))
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
