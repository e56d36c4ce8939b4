"""The served demo the first-hour tests share (one per session: starting one costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from firsthour_support import Demo, _free_port


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo, served from an empty folder, for the tests below that only talk to it (items 6, 9, 10, 12)."""
    folder = tmp_path_factory.mktemp("served-demo")
    demo = Demo(folder, _free_port())
    try:
        yield demo
    finally:
        demo.stop()
