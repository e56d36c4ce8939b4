"""Configuration, read from the environment once per process.

Every setting has a `VE_` name; `DATABASE_URL` keeps its conventional name so that container platforms can inject
it. Without a `DATABASE_URL` the service runs an embedded PostgreSQL under the data directory.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """What one process of the engine needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="VE_", extra="ignore")

    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL", "VE_DATABASE_URL"))
    data_dir: Path = Path("./ve-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Ed25519 key that signs ledger checkpoints; generated on first start when absent.
    signing_key_path: Path | None = None
    # 32-byte secret from which POS keys' HMAC secrets and voucher-code MACs are derived.
    server_secret_path: Path | None = None
    test_clock: bool = False
    db_pool_size: int = Field(default=10, ge=1, le=200)
    # Bodies above this are refused with 413 before they are read in full.
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    # Issuance bodies carry holder lists and may be larger.
    max_issuance_body_bytes: int = Field(default=64 << 20, ge=1024, le=1 << 30)
    log_level: str = "info"
    # The redemption batcher's gather window (db/batcher.py): when tills' requests arrive closer together than this,
    # a batch waits this long for company, so that its write's fixed cost in PostgreSQL is shared. 0 turns it off.
    batch_gather_ms: float = Field(default=2.0, ge=0, le=20)
    # Where the ledger's sequencer runs: "workers" (a loop in every worker process: tests, scripts) or "process"
    # (set by `serve`: a process of its own, off the workers' event loops; ledger/background.py).
    ledger_sequencer: Literal["workers", "process"] = "workers"
    # Set by `serve` for its workers: long-lived server processes, tuned as such (api/app.py: the garbage collector).
    served: bool = False
    # Webhooks (webhooks/): the first retry this long after a failure, each later one twice as long (capped at an
    # hour), for at least `webhook_give_up_s`; receivers at loopback or private addresses only when allowed.
    webhook_retry_base_s: float = Field(default=10.0, gt=0, le=3600)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_give_up_s: float = Field(default=86400.0, gt=0)
    webhook_max_pending: int = Field(default=1_000_000, ge=1)
    webhook_allow_private: bool = False
    # Where the dispatcher runs: "workers" (a loop in each worker: tests, scripts) or "process" (set by `serve`: a
    # process of its own; the workers keep a standby loop that takes over when its heartbeat stops).
    webhook_dispatcher: Literal["workers", "process"] = "workers"
    # One line per request: "json" or "text"; unset = json under `serve`, no request lines otherwise.
    log_format: Literal["json", "text"] | None = None
    # Risk rules (docs/risk.md): those judged in the redemption batch and this process's window detector. "off"
    # only to measure what they cost (loadtest/redemption_load.py --risk).
    risk: Literal["on", "off"] = "on"
    # Where the window detector runs: "workers" (a loop in each worker: tests, scripts) or "process" (set by `serve`:
    # a process of its own, so that its passes never hold a worker's event loop while tills wait).
    risk_detector: Literal["workers", "process"] = "workers"

    @property
    def resolved_signing_key_path(self) -> Path:
        return self.signing_key_path or self.data_dir / "ledger-signing.key"

    @property
    def resolved_server_secret_path(self) -> Path:
        return self.server_secret_path or self.data_dir / "server-secret.key"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_for(data_dir: Path | None, **overrides: object) -> Settings:
    """The settings of a command-line run: its `--data-dir` and other options, put into this process's environment
    (so that worker processes started later inherit them) and read back through `get_settings`."""
    get_settings.cache_clear()
    if data_dir is not None:
        os.environ["VE_DATA_DIR"] = str(data_dir)
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"VE_{name.upper()}"] = str(value)
    return get_settings()
