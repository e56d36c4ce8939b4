"""FastAPI dependencies of bearer callers: who is calling (`get_subject`) and role checks (`require`, `Admin`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from voucher_engine.auth import service as auth_service
from voucher_engine.auth.subjects import Subject
from voucher_engine.errors import EngineError
from voucher_engine.web.state import AppState


async def get_subject(request: Request, authorization: Annotated[str | None, Header()] = None) -> Subject:
    state: AppState = request.app.state.ve
    async with state.engine.connect() as conn:
        subject = await auth_service.authenticate(conn, authorization)
    request.scope["ve.role"] = subject.role  # for the request's log line (api/observe.py)
    return subject


def require(*roles: str) -> Callable[..., Coroutine[Any, Any, Subject]]:
    """A dependency that admits a bearer subject holding one of `roles` (401 without one, 403 with another)."""

    async def dependency(subject: Annotated[Subject, Depends(get_subject)]) -> Subject:
        if subject.role not in roles:
            raise EngineError("FORBIDDEN", f"This needs the role {' or '.join(roles)}; the token is {subject.role}.")
        return subject

    return dependency


Admin = Annotated[Subject, Depends(require("admin"))]
