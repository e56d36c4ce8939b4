"""What one worker process holds for its lifetime: settings, the database engine, the server's secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from voucher_engine.config import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    server_secret: bytes
    head_revision: str
    # Domain packages hang their per-process caches and background workers here, by name.
    extras: dict[str, Any] = field(default_factory=dict)
