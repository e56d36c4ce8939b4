"""Per-process caches of what never changes: compiled contracts (by SHA-256) and campaigns' fixed terms (by id).

A campaign's contract is immutable once created, so both caches need no invalidation; only `status` changes, and
it is never cached (claims read it inside their one statement, everything else reads the row).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from voucher_engine.contracts import CompiledContract, compile_contract

MAX_CONTRACTS = 256


@dataclass(frozen=True, slots=True)
class Terms:
    """A campaign's immutable terms, as claims and issuances need them."""

    campaign_id: str
    issuer_id: str
    distribution: str
    quantity: int
    per_holder_limit: int
    face_value_fen: int
    stock_shards: int
    valid_from: datetime | None
    valid_until: datetime | None
    validity_seconds: int | None
    contract: CompiledContract
    # The voucher's terms as vouchers show them (`summary["terms"]` of the contract).
    public_terms: dict
    # The campaign's calendar: times in answers are shown in it (China Standard Time unless the contract says).
    tz: ZoneInfo

    def window_for(self, issued_at: datetime) -> tuple[datetime, datetime]:
        if self.validity_seconds is not None:
            return issued_at, issued_at + timedelta(seconds=self.validity_seconds)
        assert self.valid_from is not None and self.valid_until is not None
        return self.valid_from, self.valid_until


_contracts: OrderedDict[str, CompiledContract] = OrderedDict()
_terms: OrderedDict[str, Terms] = OrderedDict()


def cached_contract(sha256: str) -> CompiledContract | None:
    """The compiled contract of `sha256` if this process has it (the till's path asks first, to skip reading the
    source); contracts are immutable, so a digest never needs invalidating."""
    compiled = _contracts.get(sha256)
    if compiled is not None:
        _contracts.move_to_end(sha256)
    return compiled


def contract_for(sha256: str, source: str) -> CompiledContract:
    """The one per-process cache of compiled contracts (least recently used out past MAX_CONTRACTS)."""
    compiled = _contracts.get(sha256)
    if compiled is None:
        compiled = compile_contract(source)
        assert compiled.sha256 == sha256, "a stored contract no longer matches its digest"
        _contracts[sha256] = compiled
        if len(_contracts) > MAX_CONTRACTS:
            _contracts.popitem(last=False)
    else:
        _contracts.move_to_end(sha256)
    return compiled


def terms_from_row(row) -> Terms:
    terms = _terms.get(row.id)
    if terms is None:
        terms = Terms(
            campaign_id=row.id,
            issuer_id=row.issuer_id,
            distribution=row.distribution,
            quantity=row.quantity,
            per_holder_limit=row.per_holder_limit,
            face_value_fen=row.face_value_fen,
            stock_shards=row.stock_shards,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            validity_seconds=row.validity_seconds,
            contract=contract_for(row.contract_sha256, row.contract_source),
            public_terms=dict(row.summary.get("terms", {})),
            tz=ZoneInfo(row.timezone),
        )
        _terms[row.id] = terms
        if len(_terms) > MAX_CONTRACTS * 4:
            _terms.popitem(last=False)
    return terms


def cached_terms(campaign_id: str) -> Terms | None:
    return _terms.get(campaign_id)


def holder_types(contract) -> dict[str, str]:
    """Attribute name -> type, from the contract's holder conditions."""
    found: dict[str, str] = {}

    def walk(node) -> None:
        if hasattr(node, "parts"):
            for part in node.parts:
                walk(part)
        elif hasattr(node, "part"):
            walk(node.part)
        elif hasattr(node, "path"):
            found[node.path.removeprefix("holder.")] = node.ftype

    for rule in getattr(contract.model, "holder_rules", ()):
        walk(rule.condition)
    return found
