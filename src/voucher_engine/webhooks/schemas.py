"""Request and response bodies of /v1/webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from voucher_engine.webhooks.events import EVENT_TYPES

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://gov.example.cn/ve-events", "events": ["redemption.settled"]}]},
    )
    url: str = Field(min_length=8, max_length=2048, description="http or https; receives POSTed events.")
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES), description="Event types wanted.")


class Webhook(BaseModel):
    id: str
    url: str
    events: list[str]
    issuer_id: str | None = Field(None, description="A gov's subscription sees its own campaigns' events only.")
    created_at: datetime
    pending: int = Field(description="Deliveries waiting to be (re)tried.")


class WebhookCreated(Webhook):
    secret: str = Field(description="HMAC key of X-VE-Signature. Shown once.")


class Delivery(BaseModel):
    """One attempt to deliver one event (attempt 0: never sent, the subscription's queue was full)."""

    event_id: str
    type: str
    attempt: int
    status_code: int | None = Field(description="The receiver's HTTP status; null if none came (timeout, refused).")
    at: datetime
    outcome: Literal["delivered", "retrying", "failed"] = Field(description="`failed`: given up, no more attempts.")
    error: str | None = None
