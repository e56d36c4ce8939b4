"""The authenticated caller, as services see it."""

from __future__ import annotations

from dataclasses import dataclass

from voucher_engine.errors import EngineError

ROLES = ("admin", "gov", "auditor")


@dataclass(frozen=True, slots=True)
class Subject:
    """A caller with a bearer token. `issuer_id`/`issuer_region` bind a gov (always) or auditor (optionally)."""

    role: str
    token_id: str
    issuer_id: str | None = None
    issuer_region: str | None = None

    def can_see_issuer(self, issuer_id: str) -> bool:
        """Admins and unbound auditors see every issuer; others only their own."""
        if self.role == "admin" or (self.role == "auditor" and self.issuer_id is None):
            return True
        return self.issuer_id == issuer_id

    def require_issuer(self, issuer_id: str) -> None:
        # Another issuer's things answer 404, not 403: their existence is none of the caller's business.
        if not self.can_see_issuer(issuer_id):
            raise EngineError("NOT_FOUND", "No such resource.")


def region_contains(outer: str, inner: str) -> bool:
    """GB/T 2260 containment: `310000` contains `310104`; `000000` (the central government) contains everything."""
    if outer == "000000":
        return True
    if outer.endswith("0000"):
        return inner[:2] == outer[:2]
    if outer.endswith("00"):
        return inner[:4] == outer[:4]
    return inner == outer
