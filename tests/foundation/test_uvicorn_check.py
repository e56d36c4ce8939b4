"""api/http.py overrides a private method of uvicorn: without it, the server must refuse to start, loudly."""

from __future__ import annotations

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from voucher_engine.api import http


def test_the_installed_uvicorn_has_what_is_overridden():
    http.check_uvicorn()
    for name in http.OVERRIDDEN:
        assert name in vars(http.OneWritePerResponse), name  # every name checked is one this class overrides


def test_a_uvicorn_without_start_asgi_task_is_refused_at_start(monkeypatch):
    """uvicorn releases before 0.45 have no `_start_asgi_task`: the override was silently never called there."""
    monkeypatch.delattr(HttpToolsProtocol, "_start_asgi_task")
    with pytest.raises(RuntimeError, match=r"lacks _start_asgi_task.*uvicorn>=0.45,<0.55"):
        http.check_uvicorn()
