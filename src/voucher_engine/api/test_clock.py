"""`/v1/test/clock` (admin), mounted only with `--test-clock`: move the business time every worker sees."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, Field

from voucher_engine import clock
from voucher_engine.auth.dependencies import Admin
from voucher_engine.auth.schemas import StrictModel
from voucher_engine.db import test_clock as shared_test_clock
from voucher_engine.web.openapi import operation
from voucher_engine.web.state import State

router = APIRouter(prefix="/v1/test/clock", tags=["test"])


class ClockSet(StrictModel):
    # JSON has no datetime type: the RFC 3339 string must be parsed, which strict mode would refuse.
    now: AwareDatetime = Field(strict=False)


class ClockState(BaseModel):
    now: datetime
    real_now: datetime
    offset_seconds: int


def _state() -> ClockState:
    return ClockState(now=clock.now(), real_now=clock.real_now(), offset_seconds=int(clock.offset().total_seconds()))


@router.put(
    "",
    response_model=ClockState,
    **operation(
        "Set the business clock (admin, --test-clock only)",
        "Every worker sees this time until it is set again or reset. Only when the service runs with `--test-clock`; never in production.",
        request_example={"now": "2025-01-15T12:00:00+08:00"},
        response_example={"now": "2025-01-15T12:00:00+08:00", "fixed": True},
    ),
)
async def set_clock(body: ClockSet, state: State, _: Admin) -> ClockState:
    offset_us = int((body.now - clock.real_now()) / timedelta(microseconds=1))
    async with state.engine.begin() as conn:
        await shared_test_clock.store_offset(conn, offset_us)
    clock.set_offset(timedelta(microseconds=offset_us))
    return _state()


@router.get(
    "",
    response_model=ClockState,
    **operation(
        "The business clock (--test-clock only)",
        "The time the engine sees now, and whether it is set.",
        response_example={"now": "2025-01-15T12:00:00+08:00", "fixed": True},
    ),
)
async def get_clock(_: Admin) -> ClockState:
    return _state()


@router.delete(
    "",
    status_code=204,
    **operation(
        "Back to the real clock (admin, --test-clock only)", "Removes the set time; 204.", response_example=None
    ),
)
async def reset_clock(state: State, _: Admin) -> Response:
    async with state.engine.begin() as conn:
        await shared_test_clock.clear_offset(conn)
    clock.set_offset(timedelta(0))
    return Response(status_code=204)
