"""`serve`'s background processes (the ledger's sequencer, the webhook dispatcher, the risk window detector) run
behind the API workers for the CPU, and so do their PostgreSQL backends when the database is on the same machine:
on two cores, a pass of theirs in a backend at the server's own priority took the CPU from the backend of a till's
batch (docs/redemption.md, "Speed")."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest
from reliability_helpers import RealServer, create_database, drop_database, start_service

from voucher_engine.db.engine import plain_url

BACKGROUND = {
    "voucher-engine ledger": 5,
    "voucher-engine webhooks": 10,
    "voucher-engine risk detector": 15,
    "voucher-engine stats poller": 5,  # in the worker, on its own connection
}


def _priority(pid: int) -> int:
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:  # the backend has gone (its process reconnects): not there yet
        return -1


async def _backends(url: str) -> dict[str, list[int]]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        rows = await conn.fetch("SELECT application_name, pid FROM pg_stat_activity WHERE datname = current_database()")
    finally:
        await conn.close()
    found: dict[str, list[int]] = {}
    for row in rows:
        found.setdefault(row["application_name"], []).append(row["pid"])
    return found


@pytest.mark.asyncio(loop_scope="session")
async def test_background_processes_and_their_backends_run_behind_the_workers(
    server_url, template_database, tmp_path_factory
):
    name, url = await create_database(server_url, template_database)
    data_dir = tmp_path_factory.mktemp("served-background") / "data"
    _service, close = await start_service(url, data_dir)
    server = None
    try:
        server = RealServer(url, data_dir, workers=1)
        await server.ready()
        found: dict[str, list[int]] = {}
        # Each process connects once it has started (a second or two). A backend shows in pg_stat_activity as soon
        # as it is connected, a moment before the process's connect hook has reniced it: wait for that moment too.
        for _ in range(100):
            found = await _backends(url)
            if all(found.get(app) for app in BACKGROUND) and all(
                _priority(pid) >= niceness for app, niceness in BACKGROUND.items() for pid in found[app]
            ):
                break
            await asyncio.sleep(0.2)
        for app, niceness in BACKGROUND.items():
            assert found.get(app), (app, sorted(found), server.log()[-2000:])
            for pid in found[app]:
                assert os.getpriority(os.PRIO_PROCESS, pid) >= niceness, (app, pid)
        # The workers' own backends keep the server's priority.
        workers = found.get("voucher-engine", [])
        assert workers, sorted(found)
        assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in workers] == [0] * len(workers)
    finally:
        if server is not None:
            server.stop()
        await close()
        await drop_database(server_url, name)
