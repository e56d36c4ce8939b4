"""What one worker process holds for its lifetime: settings, the database engine, the server's secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
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


async def get_state(request: Request) -> AppState:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, a thread hop on every request.
    return request.app.state.ve


State = Annotated[AppState, Depends(get_state)]
