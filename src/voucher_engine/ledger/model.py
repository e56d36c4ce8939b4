"""What the money path hands the ledger, and what it gets back: frozen dataclasses, checked before anything is written.

Sign convention, everywhere in the ledger: a **debit is money in**, a **credit is money out**. An account's
`balance_fen` is its debits minus its credits, so escrow holds a positive balance, a merchant's settlement account
grows with every redemption, and a fiscal (财政) account goes negative by what it has funded.

The kinds of transaction and their only allowed shapes (debited accounts <- credited accounts):

    fund            escrow:<campaign>   <- fiscal:<funder>...     one posting per funder (资金池 funding)
    redeem          merchant:<merchant> <- escrow:<campaign>      a voucher's subsidy paid to the merchant (核销)
    refund          escrow:<campaign>   <- merchant:<merchant>    subsidy clawed back on a refund
    return          fiscal:<funder>...  <- escrow:<campaign>      what is left at close, back to the funders
    clawback        escrow:<campaign>   <- merchant:<merchant>    a redemption's subsidy taken back (追回)
    payout          payout:<merchant>   <- merchant:<merchant>    an instruction to the bank, sent (结算出款)
    payout_confirm  settled:<merchant>  <- payout:<merchant>      the bank paid it
    payout_reversal merchant:<merchant> <- payout:<merchant>      the bank could not pay it: back to the merchant

The first five belong to a campaign and move its escrow. The three payout kinds belong to no campaign (a merchant's
account mixes every campaign's money): they carry no `campaign_id`, and every posting names the same merchant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from voucher_engine.errors import EngineError

KINDS = ("fund", "redeem", "refund", "return", "clawback", "payout", "payout_confirm", "payout_reversal")
# Kinds that move a merchant's money between its own accounts, outside any campaign.
MERCHANT_KINDS = frozenset({"payout", "payout_confirm", "payout_reversal"})
ACCOUNT_KINDS = ("fiscal", "escrow", "merchant", "payout", "settled")
ACCOUNT_PATTERN = re.compile(r"^(fiscal|escrow|merchant|payout|settled):([A-Za-z0-9][A-Za-z0-9._-]{0,63})$")
REF_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
NESTED_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Limits (TigerBeetle style: everything has one).
MAX_POSTINGS = 64
MAX_BATCH = 5000
MAX_AMOUNT_FEN = (1 << 53) - 1  # exact as a JSON number, so every verifier reads the same integer
MAX_REF_STRING = 512
MAX_REFS = 32
MAX_REF_DEPTH = 3

# Which account kinds a kind of transaction may debit and credit.
SHAPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "fund": (frozenset({"escrow"}), frozenset({"fiscal"})),
    "redeem": (frozenset({"merchant"}), frozenset({"escrow"})),
    "refund": (frozenset({"escrow"}), frozenset({"merchant"})),
    "return": (frozenset({"fiscal"}), frozenset({"escrow"})),
    "clawback": (frozenset({"escrow"}), frozenset({"merchant"})),
    "payout": (frozenset({"payout"}), frozenset({"merchant"})),
    "payout_confirm": (frozenset({"settled"}), frozenset({"payout"})),
    "payout_reversal": (frozenset({"merchant"}), frozenset({"payout"})),
}


def account_kind(account: str) -> str:
    """`escrow` for `escrow:cmp_1`; raises VALIDATION_ERROR for a name that is not an account."""
    match = ACCOUNT_PATTERN.match(account) if isinstance(account, str) else None
    if match is None:
        raise EngineError(
            "VALIDATION_ERROR", f"{account!r} is not an account name (fiscal:/escrow:/merchant:/payout:/settled: + id)"
        )
    return match.group(1)


def escrow_account(campaign_id: str) -> str:
    return f"escrow:{campaign_id}"


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of a transaction: `account` is debited (money in) or credited (money out); exactly one is > 0."""

    account: str
    debit_fen: int = 0
    credit_fen: int = 0

    @property
    def amount_fen(self) -> int:
        """Signed: positive for a debit, negative for a credit (how the database stores it)."""
        return self.debit_fen - self.credit_fen


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """A balanced move of money, to be posted inside the caller's database transaction.

    `refs` name what caused it (keys such as campaign_id, voucher_id, redemption_id, merchant_id, funder, refund_id,
    issuance_id): strings, integers (below 2^53) or small objects of them; they are hashed with the rest.
    `campaign_id` is required for the campaign kinds (they move its escrow) and is added to `refs` when absent there;
    the merchant kinds (MERCHANT_KINDS) carry none.
    `at` is business time (`clock.now()`), timezone-aware.
    """

    kind: str
    postings: tuple[Posting, ...]
    refs: dict[str, Any]
    at: datetime
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True)
class PostedTransaction:
    """A transaction as written. `seq`, `hash` and `prev_hash` come later, from the sequencer (see sequencer.py)."""

    id: str
    kind: str
    at: datetime
    campaign_id: str | None
    postings: tuple[Posting, ...]
    refs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PreparedPosting:
    """A checked micro-batch of transactions, ready to post (`service.prepare`): nothing is sent yet.

    `args` are the arguments of the database function `ledger_post_batch` (migration 0020), in its order: a caller
    that posts in a statement of its own (to save a round trip) passes them to that function, and hands what it
    answered to `service.landed` as a `PostingResult`.
    """

    txs: tuple[NewTransaction, ...]
    ids: tuple[str, ...]
    checked: tuple[tuple[str | None, dict[str, Any], list[str], list[int]], ...]  # `validate` of each transaction
    deltas: dict[str, int]  # each account's net movement
    accounts: tuple[str, ...]  # the accounts moved, in lock (name) order
    total_keys: tuple[tuple[str | None, str, str], ...]  # the campaign totals rows moved: (campaign, kind, funder)
    args: tuple[Any, ...]


class PostingResult(NamedTuple):
    """What `ledger_post_batch` answers: accounts moved, transactions inserted, the queued batch, totals rows."""

    moved: int
    inserted: int
    batch: int | None
    totals: int


def _check_ref_value(value: Any, depth: int, where: str) -> None:
    if isinstance(value, bool) or value is None:
        raise EngineError("VALIDATION_ERROR", f"ledger ref {where} must be a string, an integer or an object")
    if isinstance(value, str):
        if len(value) > MAX_REF_STRING or "\x00" in value:
            raise EngineError("VALIDATION_ERROR", f"ledger ref {where} is too long or holds NUL")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise EngineError("VALIDATION_ERROR", f"ledger ref {where} is not valid Unicode") from None
        return
    if isinstance(value, int):
        if abs(value) > MAX_AMOUNT_FEN:
            raise EngineError("VALIDATION_ERROR", f"ledger ref {where} is beyond 2^53")
        return
    if isinstance(value, dict):
        if depth >= MAX_REF_DEPTH or len(value) > MAX_REFS:
            raise EngineError("VALIDATION_ERROR", f"ledger ref {where} is nested too deep or too wide")
        for key, inner in value.items():
            # ASCII keys only: then the code-point order Python sorts by is RFC 8785's UTF-16 order.
            if not isinstance(key, str) or not NESTED_KEY_PATTERN.match(key):
                raise EngineError("VALIDATION_ERROR", f"ledger ref key {key!r} in {where} is not [A-Za-z0-9._:-]")
            _check_ref_value(inner, depth + 1, f"{where}.{key}")
        return
    raise EngineError("VALIDATION_ERROR", f"ledger ref {where} must be a string, an integer or an object")


def normalized_refs(tx: NewTransaction) -> tuple[str | None, dict[str, Any]]:
    """(campaign_id, refs with campaign_id filled in), after checking both; (None, refs) for a merchant kind."""
    refs = dict(tx.refs or {})
    campaign_id = tx.campaign_id or refs.get("campaign_id")
    if tx.kind in MERCHANT_KINDS:
        if campaign_id is not None:
            raise EngineError("VALIDATION_ERROR", f"a {tx.kind} transaction belongs to no campaign")
        _check_refs(refs)
        return None, refs
    if not isinstance(campaign_id, str) or not ACCOUNT_PATTERN.match(f"escrow:{campaign_id}"):
        raise EngineError("VALIDATION_ERROR", f"a ledger transaction needs a campaign_id, not {campaign_id!r}")
    if refs.setdefault("campaign_id", campaign_id) != campaign_id:
        raise EngineError("VALIDATION_ERROR", "refs.campaign_id differs from the transaction's campaign_id")
    _check_refs(refs)
    return campaign_id, refs


def _check_refs(refs: dict[str, Any]) -> None:
    if len(refs) > MAX_REFS:
        raise EngineError("VALIDATION_ERROR", f"at most {MAX_REFS} refs")
    for key, value in refs.items():
        if not isinstance(key, str) or not REF_KEY_PATTERN.match(key):
            raise EngineError("VALIDATION_ERROR", f"ledger ref key {key!r} is not [a-z][a-z0-9_]*")
        _check_ref_value(value, 1, key)


def check_postings(kind: str, campaign_id: str | None, accounts: list[str], amounts: list[int]) -> str | None:
    """Why these postings cannot form a `kind` transaction of `campaign_id`, or None when they can.

    Shared by `post` (before writing) and `verify` (after reading): the pair of assertions around the money path.
    """
    if kind not in SHAPES:
        return f"unknown kind {kind!r}"
    if not 2 <= len(accounts) <= MAX_POSTINGS or len(accounts) != len(amounts):
        return f"a transaction has 2..{MAX_POSTINGS} postings, not {len(accounts)}"
    if kind in MERCHANT_KINDS:
        return _check_merchant_postings(kind, campaign_id, accounts, amounts)
    if campaign_id is None:
        return f"a {kind} needs a campaign_id"
    debit_kinds, credit_kinds = SHAPES[kind]
    escrow = escrow_account(campaign_id)
    touches_escrow = False
    total = 0
    for account, amount in zip(accounts, amounts):
        match = ACCOUNT_PATTERN.match(account) if isinstance(account, str) else None
        if match is None:
            return f"{account!r} is not an account name"
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_AMOUNT_FEN:
            return f"posting to {account} has amount {amount!r}: not a non-zero integer number of fen below 2^53"
        allowed = debit_kinds if amount > 0 else credit_kinds
        if match.group(1) not in allowed:
            side = "debit" if amount > 0 else "credit"
            return f"a {kind} may not {side} {account}"
        if match.group(1) == "escrow":
            if account != escrow:
                return f"a transaction of campaign {campaign_id} moves {account}"
            touches_escrow = True
        total += amount
    if total != 0:
        return f"debits and credits differ by {total} fen"
    if not touches_escrow:
        return f"a {kind} must move {escrow}"
    return None


def _check_merchant_postings(kind: str, campaign_id: str | None, accounts: list[str], amounts: list[int]) -> str | None:
    """A payout kind: no campaign, the shape of SHAPES[kind], every posting on one merchant's accounts, balanced."""
    if campaign_id is not None:
        return f"a {kind} belongs to no campaign, not {campaign_id}"
    debit_kinds, credit_kinds = SHAPES[kind]
    owners: set[str] = set()
    total = 0
    for account, amount in zip(accounts, amounts):
        match = ACCOUNT_PATTERN.match(account) if isinstance(account, str) else None
        if match is None:
            return f"{account!r} is not an account name"
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_AMOUNT_FEN:
            return f"posting to {account} has amount {amount!r}: not a non-zero integer number of fen below 2^53"
        if match.group(1) not in (debit_kinds if amount > 0 else credit_kinds):
            return f"a {kind} may not {'debit' if amount > 0 else 'credit'} {account}"
        owners.add(match.group(2))
        total += amount
    if total != 0:
        return f"debits and credits differ by {total} fen"
    if len(owners) != 1:
        return f"a {kind} moves money between one merchant's own accounts, not {sorted(owners)}"
    return None


def validate(tx: NewTransaction) -> tuple[str | None, dict[str, Any], list[str], list[int]]:
    """Check one transaction completely; answer (campaign_id, refs, accounts, signed amounts)."""
    if tx.kind not in SHAPES:
        raise EngineError("VALIDATION_ERROR", f"unknown ledger transaction kind {tx.kind!r}")
    if not isinstance(tx.at, datetime) or tx.at.tzinfo is None or tx.at.utcoffset() is None:
        raise EngineError("VALIDATION_ERROR", "a ledger transaction's `at` must be a timezone-aware datetime")
    campaign_id, refs = normalized_refs(tx)
    accounts: list[str] = []
    amounts: list[int] = []
    for posting in tx.postings:
        debit, credit = posting.debit_fen, posting.credit_fen
        if type(debit) is not int or type(credit) is not int or debit < 0 or credit < 0 or (debit > 0) == (credit > 0):
            raise EngineError(
                "VALIDATION_ERROR",
                f"posting to {posting.account}: exactly one of debit_fen and credit_fen must be a positive integer",
            )
        accounts.append(posting.account)
        amounts.append(debit - credit)
    problem = check_postings(tx.kind, campaign_id, accounts, amounts)
    if problem is not None:
        raise EngineError("VALIDATION_ERROR", f"unbalanced or ill-formed {tx.kind} transaction: {problem}")
    return campaign_id, refs, accounts, amounts
