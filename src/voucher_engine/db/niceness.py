"""The CPU priority of a background process's own PostgreSQL backends, when the server runs on this machine.

A background process (the risk window detector) is niced behind the API workers, but most of its work is SQL, done
by its backend processes in PostgreSQL at the server's own priority: on a machine that runs the database beside the
service (the embedded server, a small deployment), those backends took the CPU from the backends of the tills'
batches. `lower_backends` puts each new connection's backend at the process's niceness too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("voucher_engine.db")

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_local(url: str) -> bool:
    """Whether the server of `url` runs on this machine (a local address or a Unix socket)."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host")
    if isinstance(host, tuple):
        host = host[0] if host else None
    return host is None or host in LOCAL_HOSTS or host.startswith("/")


def renice_backend(pid: int, niceness: int) -> bool:
    """Put the PostgreSQL backend `pid` at `niceness` (never higher priority than it has); answer whether it is now
    there. Only a `postgres` process is touched (any other process that happens to have the pid is left alone); the
    kernel decides whether we may (ours, or any when we are root: the embedded server runs as a user of its own)."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return False
        if os.getpriority(os.PRIO_PROCESS, pid) < niceness:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
        return True
    except OSError:  # gone, or not ours to change: the pass runs at the server's priority, as before
        return False


def lower_backends(engine: AsyncEngine, url: str, niceness: int) -> None:
    """Renice the backend of every connection `engine` opens from now on, when the server is on this machine."""
    if not is_local(url):
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _lower(dbapi_connection: Any, _record: Any) -> None:
        pid = dbapi_connection.run_async(lambda raw: raw.fetchval("SELECT pg_backend_pid()"))
        if not renice_backend(int(pid), niceness):
            log.info("could not lower the priority of PostgreSQL backend %s", pid)
