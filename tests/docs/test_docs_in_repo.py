"""Issue 14, item 5: the documentation a clone carries is whole. Every link in the README and docs/ resolves inside
the repository; docs/api.md names every error code the engine can answer and every path it serves."""

from __future__ import annotations

import re
from pathlib import Path

from voucher_engine.errors import ALL_CODES

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_link_resolves_inside_the_repository():
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
            assert path.exists(), f"{page.name} links to a missing file: {target}"


def test_the_readme_points_at_the_docs_and_not_at_shared():
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    for page in ("docs/api.md", "docs/design.md", "docs/policies.md", "docs/contract-language.md"):
        assert f"({page})" in readme, page


def test_api_md_names_every_error_code_with_its_status():
    from voucher_engine.web.problems import STATUS_BY_CODE

    text = (ROOT / "docs" / "api.md").read_text()
    for code in sorted(ALL_CODES):
        row = re.search(rf"^\| `{code}` \| (\d+)", text, re.M)
        assert row, f"docs/api.md has no row for {code}"
        if code in STATUS_BY_CODE:
            assert int(row.group(1)) == STATUS_BY_CODE[code], code


def test_api_md_describes_signing_and_every_served_path():
    from voucher_engine.api.app import create_app
    from voucher_engine.config import Settings

    text = (ROOT / "docs" / "api.md").read_text()
    for needle in ("X-VE-Key-Id", "X-VE-Timestamp", "X-VE-Nonce", "X-VE-Signature", "HEX_SHA256(BODY)"):
        assert needle in text, needle
    # Every served path is named in docs/api.md, or at least in its room's page under docs/.
    every_page = "\n".join(page.read_text() for page in PAGES)
    documented = {re.sub(r"\{[^}]*\}", "{}", path) for path in re.findall(r"`(?:[A-Z]+ )?(/[^`?\s]*)", every_page)}
    app = create_app(Settings(database_url="postgresql://unused/unused", test_clock=True))
    for path in app.openapi()["paths"]:
        assert re.sub(r"\{[^}]*\}", "{}", path) in documented, f"docs/api.md does not mention {path}"
