"""The window detector (反欺诈, patterns over time): off the till's path, as the data arrives.

A pass takes the ledger's newly sequenced transactions after its cursor (as the stats poller does), copies the
redemptions and refunds among them into its window state (`risk_w_*`, migrations 0018 and 0022: the windows are
read from counts that each pass adds its new events to, so a pass costs what its events cost, not what a busy
till's window holds), judges the windows that those events touched — a merchant's hour and minute against its own
history, orders that hug the voucher's minimum spend, a holder–merchant pair that recurs across vouchers and
campaigns, a new merchant's sudden volume, one holder at many merchants in minutes — under the rules of the
campaigns whose events touched them (`Book`), and the first-come claims since its claims cursor, and opens a flag through `risk.service.open_flag` for each pattern
it finds, with the redemptions and the figures as evidence and a dedupe key, so that a pattern seen again (the
next event of the same burst, a pass run twice) opens nothing new. The cursor, the state and the flags are written
in one transaction: a crash loses nothing and counts nothing twice. (Odd hours and a refund followed by the same
voucher's redemption are judged per redemption, in the redemption batch: not here.)

Under `serve` the loop runs in a process of its own (`run_process`); in-process apps run it in every worker. A
transaction-scoped try-lock lets one pass run at a time. Freshness: a redemption is judged once the ledger has
sequenced it and the next pass has run (`VE_RISK_DETECT_INTERVAL_S`, 1 s).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voucher_engine.campaigns.cache import cached_contract, contract_for
from voucher_engine.clock import CHINA_TZ
from voucher_engine.contracts.risk import DEFAULTS, RiskRule, RiskRules
from voucher_engine.db import tailer
from voucher_engine.db.raw import driver
from voucher_engine.risk import detector_repository as repository
from voucher_engine.risk import service
from voucher_engine.risk import windows as w
from voucher_engine.risk.windows import SHAPES, limit, rules_for

log = logging.getLogger("voucher_engine.risk.detector")

PASS_LIMIT = 5_000  # ledger transactions per pass; a backlog is worked off by passes that come back full
POLL_INTERVAL_S = float(os.environ.get("VE_RISK_DETECT_INTERVAL_S", "1.0"))
STATE_KEY = "risk.detector"


@dataclass(frozen=True)
class Finding:
    """A pattern the windows show, and the rule it met: what `risk.service.open_flag` is given."""

    signal: str
    outcome: str
    merchant_id: str | None
    campaign_id: str | None
    redemption_ids: list[str]
    evidence: dict[str, Any]
    dedupe_key: str


@dataclass
class PassResult:
    taken: int = 0  # ledger transactions read
    events: int = 0  # of which redemptions and refunds
    findings: list[Finding] = field(default_factory=list)
    locked_out: bool = False  # another worker's pass held the lock


def _day(at: datetime) -> str:
    return at.astimezone(CHINA_TZ).date().isoformat()


def _week(at: datetime) -> str:
    year, week, _ = at.astimezone(CHINA_TZ).isocalendar()
    return f"{year}-W{week:02d}"


def _main_campaign(campaigns: Sequence[str | None]) -> str | None:
    """The campaign most of the evidence belongs to (a flag is shown to that campaign's government)."""
    counted = Counter(c for c in campaigns if c)
    return counted.most_common(1)[0][0] if counted else None


# Per signal: the figure a flag's `actual` quotes and the limits its `expected` names (first one set), as the
# per-redemption flags' evidence does.
_QUOTED = {
    w.MERCHANT_VELOCITY: ("redemptions_in_hour", ("limit_over_history", "limit_per_hour")),
    w.NEW_MERCHANT_VOLUME: ("redemptions_in_hour", ("limit_per_hour",)),
    w.THRESHOLD_SHARE: ("share_within_band_bp", ("limit_share_bp",)),
    w.EXACT_REPEAT: ("repeats", ("limit_times",)),
    w.PAIR_RECURRENCE: ("redemptions", ("limit_vouchers",)),
    w.HOLDER_SPREAD: ("merchants", ("limit_merchants",)),
    w.CLAIMS_BURST: ("claims_in_minute", ("limit_per_minute",)),
}


def _quoted(rule: RiskRule, evidence: dict[str, Any]) -> dict[str, Any]:
    actual, limits = _QUOTED[rule.signal]
    expected = next((evidence[k] for k in limits if evidence.get(k) is not None), None)
    return {
        **evidence,
        "rule": rule.text,
        "source": "platform default" if rule.line is None else "contract",
        "actual": evidence[actual],
        "expected": f"< {expected}",
    }


def _found(
    rule: RiskRule,
    merchant_id: str | None,
    campaigns: Sequence[str | None],
    ids: Sequence[str],
    evidence: dict[str, Any],
    key: str,
) -> Finding:
    return Finding(
        signal=rule.signal,
        outcome=rule.outcome or "flag",
        merchant_id=merchant_id,
        campaign_id=_main_campaign(campaigns),
        redemption_ids=list(ids)[: w.MAX_EVIDENCE_IDS],
        evidence=_quoted(rule, evidence),
        dedupe_key=key,
    )


class Book:
    """The rules of the campaigns whose events a pass reads: each campaign's own (its contract's `risk { … }` section
    applied to the defaults), the platform defaults for a campaign not found. A window spans campaigns; what a pass
    judges is the windows that each campaign's new redemptions touched, under that campaign's rules, so a campaign
    that loosens a rule loosens it for the patterns its own redemptions make, and one that tightens it, tightens it
    for them. Where the same window is touched by campaigns of different rules, each judges it (and the flag is
    opened once: the dedupe key is the pattern's)."""

    def __init__(self, by_campaign: dict[str, RiskRules]) -> None:
        self.by_campaign = by_campaign

    def rules(self, campaign_id: str | None) -> RiskRules:
        return self.by_campaign.get(campaign_id or "", DEFAULTS)

    def groups(self, *signals: str, banded: bool = False) -> list[Group]:
        """The campaigns of the pass that judge `signals` alike (their rules; with `banded`, threshold_share's band
        too), each group with its campaigns and the rules of one of them; one group of every campaign (campaigns
        None: no filter) when all of them keep the platform defaults, the usual case."""

        def key(rules: RiskRules) -> tuple:
            return tuple(rules_for(rules, s) for s in signals), _share_band(rules) if banded else 0

        grouped: dict[tuple, list[str]] = {}
        for campaign_id, rules in self.by_campaign.items():
            grouped.setdefault(key(rules), []).append(campaign_id)
        if set(grouped) <= {key(DEFAULTS)}:
            return [Group(DEFAULTS, None)]
        return [Group(self.by_campaign[ids[0]], sorted(ids)) for ids in grouped.values()]


@dataclass(frozen=True)
class Group:
    """Campaigns that judge some signals alike: the rules of one of them, and the campaigns (None: every one)."""

    rules: RiskRules
    campaigns: list[str] | None

    def of(self, signal: str) -> tuple[RiskRule, ...]:
        return rules_for(self.rules, signal)

    @property
    def band(self) -> int:
        return _share_band(self.rules)


async def load_book(raw: Any, campaign_ids: Sequence[str]) -> Book:
    """The rules of these campaigns, their contracts compiled once per process (campaigns/cache.py)."""
    digests = await repository.campaign_contracts(raw, sorted(set(campaign_ids)))
    missing = sorted({d for d in digests.values() if cached_contract(d) is None})
    sources = await repository.contract_sources(raw, missing) if missing else {}
    by_campaign = {}
    for campaign_id, digest in digests.items():
        compiled = cached_contract(digest) or contract_for(digest, sources[digest])
        by_campaign[campaign_id] = compiled.risk
    return Book(by_campaign)


async def detect_pass(conn: AsyncConnection, limit_: int = PASS_LIMIT) -> PassResult:
    """One pass in `conn`'s transaction (the caller commits): take the new events, update the windows, and answer
    the findings, most severe rule first (flags are opened by `run_pass`, in the same transaction)."""
    raw = await driver(conn)
    if not await repository.try_lock(raw):
        return PassResult(locked_out=True)
    last_seq, claims_at = await repository.read_cursor(raw)
    taken = await repository.take_events(raw, last_seq, limit_)
    result = PassResult(taken=taken.taken, events=taken.events)
    if taken.last_seq is not None:
        if taken.newest is not None:
            book = await load_book(raw, taken.campaigns)
            await repository.add_counts(raw, taken.fresh)
            span = (last_seq, taken.last_seq)
            result.findings += await _merchant_hours(raw, book, span)
            result.findings += await _threshold_share(raw, book, span)
            result.findings += await _exact_repeat(raw, book, span)
            result.findings += await _pairs(raw, book, taken.fresh)
            result.findings += await _holder_spread(raw, book, span)
            await repository.prune(
                raw,
                taken.newest,
                SHAPES.share_window + timedelta(days=1),
                SHAPES.history + timedelta(days=1),
                SHAPES.pair_window,
                SHAPES.minutes_kept,
            )
        await repository.move_cursor(raw, taken.last_seq)
    result.findings += await _claims(raw, claims_at)
    return result


def _velocity_met(rule: RiskRule, row: Any, warm: bool) -> dict[str, Any] | None:
    """The figures of a velocity rule met by one merchant hour, or None."""
    per_minute, per_hour = limit(rule, "per_minute"), limit(rule, "per_hour")
    over_history = limit(rule, "over_history")
    met = []
    if per_minute is not None and row["max_minute"] >= per_minute:
        met.append("per_minute")
    if per_hour is not None and row["redemptions"] >= per_hour:
        met.append("per_hour")
    history_limit = None
    if warm and over_history is not None:
        history_limit = max(SHAPES.hour_floor, -(-row["max_hour"] * over_history // 10_000))
        if row["redemptions"] >= history_limit and row["redemptions"] > row["max_hour"]:
            met.append("over_history")
    if not met:
        return None
    return {
        "met": met,
        "hour_until": row["until"].isoformat(),
        "redemptions_in_hour": row["redemptions"],
        "busiest_minute": row["max_minute"],
        "history_busiest_hour": row["max_hour"] if warm else None,
        "history_days": SHAPES.history.days if warm else 0,
        "limit_per_minute": per_minute,
        "limit_per_hour": per_hour,
        "limit_over_history": history_limit,
    }


async def _merchant_hours(raw: Any, book: Book, span: tuple[int, int]) -> list[Finding]:
    """Per merchant hour the pass touched: velocity against the merchant's own history, or, for a merchant
    registered lately (no history of its own to be judged against), its sudden volume (judged together: newness
    decides which applies)."""
    found: list[Finding] = []
    for group in book.groups(w.MERCHANT_VELOCITY, w.NEW_MERCHANT_VOLUME):
        velocity, newness = group.of(w.MERCHANT_VELOCITY), group.of(w.NEW_MERCHANT_VOLUME)
        if not velocity and not newness:
            continue
        for row in await repository.touch_merchants(raw, span, SHAPES.history, group.campaigns):
            finding = await _merchant_hour(raw, row, velocity, newness)
            if finding is not None:
                found.append(finding)
    return found


async def _merchant_hour(
    raw: Any, row: Any, velocity: tuple[RiskRule, ...], newness: tuple[RiskRule, ...]
) -> Finding | None:
    merchant, hour, registered = row["merchant_id"], row["until"], row["registered_at"]
    age = (hour - registered) if registered is not None else None
    if any(age is not None and age < timedelta(days=limit(r, "days") or 0) for r in newness):
        new_rule = _new_rule_met(newness, row)
        return await _new_merchant(raw, new_rule, row) if new_rule is not None else None
    warm = row["first_hour"] is not None and row["first_hour"] <= hour - SHAPES.history_min
    for rule in velocity:
        figures = _velocity_met(rule, row, warm)
        if figures is None:
            continue
        ids = await repository.hour_redemptions(raw, merchant, row["until"], w.MAX_EVIDENCE_IDS)
        return _found(
            rule,
            merchant,
            [r["campaign_id"] for r in ids],
            [r["redemption_id"] for r in ids],
            figures,
            f"{w.MERCHANT_VELOCITY}:{merchant}:{_day(hour)}",
        )
    return None


def _new_rule_met(newness: tuple[RiskRule, ...], row: Any) -> RiskRule | None:
    registered = row["registered_at"]
    if registered is None:
        return None
    for rule in newness:
        days, per_hour = limit(rule, "days"), limit(rule, "per_hour")
        if days is None or per_hour is None:
            continue
        if row["until"] - registered < timedelta(days=days) and row["redemptions"] >= per_hour:
            return rule
    return None


async def _new_merchant(raw: Any, rule: RiskRule, row: Any) -> Finding:
    merchant = row["merchant_id"]
    ids = await repository.hour_redemptions(raw, merchant, row["until"], w.MAX_EVIDENCE_IDS)
    return _found(
        rule,
        merchant,
        [r["campaign_id"] for r in ids],
        [r["redemption_id"] for r in ids],
        {
            "registered_at": row["registered_at"].isoformat(),
            "hour_until": row["until"].isoformat(),
            "redemptions_in_hour": row["redemptions"],
            "busiest_minute": row["max_minute"],
            "limit_days": limit(rule, "days"),
            "limit_per_hour": limit(rule, "per_hour"),
        },
        f"{w.NEW_MERCHANT_VOLUME}:{merchant}",
    )


async def _threshold_share(raw: Any, book: Book, span: tuple[int, int]) -> list[Finding]:
    found = []
    for group in book.groups(w.THRESHOLD_SHARE):
        for rule in group.of(w.THRESHOLD_SHARE):
            within, share, at_least = limit(rule, "within"), limit(rule, "share"), limit(rule, "at_least")
            if within is None or share is None or at_least is None:
                continue
            rows = await repository.hugging(raw, span, SHAPES.share_window, within, at_least, group.campaigns)
            for row in rows:
                if row["near"] * 10_000 < share * row["orders"]:
                    continue
                found.append(await _share_finding(raw, rule, row, within, share, at_least))
    return found


async def _share_finding(raw: Any, rule: RiskRule, row: Any, within: int, share: int, at_least: int) -> Finding:
    near = await repository.near_redemptions(
        raw, row["merchant_id"], row["until"], SHAPES.share_window, within, w.MAX_EVIDENCE_IDS
    )
    return _found(
        rule,
        row["merchant_id"],
        [r["campaign_id"] for r in near],
        [r["redemption_id"] for r in near],
        {
            "orders": row["orders"],
            "orders_within_band": row["near"],
            "share_within_band_bp": row["near"] * 10_000 // row["orders"],
            "min_spend_fen": row["min_spend_fen"],
            "most_repeated_amount_fen": row["top_amount_fen"],
            "most_repeated_count": row["top_count"],
            "limit_within_bp": within,
            "limit_share_bp": share,
            "limit_at_least": at_least,
            "window_days": SHAPES.share_window.days,
        },
        f"{w.THRESHOLD_SHARE}:{row['merchant_id']}:{_week(row['until'])}",
    )


def _share_band(rules: RiskRules) -> int:
    """The band above the minimum spend where an exact repeat or a pair's sale hugs the threshold: threshold_share's
    `within` (the platform default's when threshold_share is off)."""
    for rule in rules_for(rules, w.THRESHOLD_SHARE) or DEFAULTS.for_signal(w.THRESHOLD_SHARE):
        within = limit(rule, "within")
        if within is not None:
            return within
    return 0


async def _exact_repeat(raw: Any, book: Book, span: tuple[int, int]) -> list[Finding]:
    found = []
    for group in book.groups(w.EXACT_REPEAT, banded=True):
        for rule in group.of(w.EXACT_REPEAT):
            times, minutes = limit(rule, "times"), limit(rule, "minutes")
            if times is None or minutes is None:
                continue
            window = timedelta(minutes=minutes)
            rows = await repository.exact_repeats(
                raw, span, window, group.band, times, w.MAX_EVIDENCE_IDS, group.campaigns
            )
            for row in rows:
                found.append(
                    _found(
                        rule,
                        row["merchant_id"],
                        row["campaigns"],
                        row["ids"],
                        {
                            "order_amount_fen": row["order_amount_fen"],
                            "min_spend_fen": row["min_spend_fen"],
                            "repeats": row["n"],
                            "until": row["at"].isoformat(),
                            "limit_times": times,
                            "limit_minutes": minutes,
                            "band_bp": group.band,
                        },
                        f"{w.EXACT_REPEAT}:{row['merchant_id']}:{_day(row['at'])}",
                    )
                )
    return found


async def _pairs(raw: Any, book: Book, fresh: list[int]) -> list[Finding]:
    """The pairs the new redemptions touched, each judged under the rules of the campaigns of those redemptions (a
    sale hugs the threshold within its own campaign's band)."""
    band = _share_band(DEFAULTS)
    bands = {c: b for c, r in book.by_campaign.items() if (b := _share_band(r)) != band}
    fewest = min(
        (limit(r, "vouchers") or 1 for g in book.groups(w.PAIR_RECURRENCE) for r in g.of(w.PAIR_RECURRENCE)),
        default=2**31 - 1,  # the signal is off everywhere: the pairs are kept, none is judged
    )
    found = []
    for row in await repository.add_pairs(raw, fresh, band, bands, fewest):
        judged = dict.fromkeys(rules_for(book.rules(c), w.PAIR_RECURRENCE) for c in sorted(row["new_campaigns"]))
        for pair_rules in judged:
            finding = _pair_met(pair_rules, row)
            if finding is not None:
                found.append(finding)
                break
    return found


def _pair_met(pair_rules: tuple[RiskRule, ...], row: Any) -> Finding | None:
    for rule in pair_rules:
        vouchers, campaigns = limit(rule, "vouchers") or 1, limit(rule, "campaigns") or 1
        hugging = limit(rule, "hugging") or 0
        if row["redemptions"] < vouchers or len(row["campaigns"]) < campaigns:
            continue
        if row["hugging"] * 10_000 < hugging * row["redemptions"]:
            continue
        return _found(
            rule,
            row["merchant_id"],
            list(row["campaigns"]),
            row["redemption_ids"],
            {
                "holder": row["holder"],
                "redemptions": row["redemptions"],
                "hugging": row["hugging"],
                "campaigns": list(row["campaigns"]),
                "first_at": row["first_at"].isoformat(),
                "last_at": row["last_at"].isoformat(),
                "limit_vouchers": vouchers,
                "limit_campaigns": campaigns,
                "limit_hugging_bp": hugging,
            },
            f"{w.PAIR_RECURRENCE}:{row['holder']}:{row['merchant_id']}",
        )
    return None


async def _holder_spread(raw: Any, book: Book, span: tuple[int, int]) -> list[Finding]:
    found = []
    for group in book.groups(w.HOLDER_SPREAD):
        for rule in group.of(w.HOLDER_SPREAD):
            merchants, minutes = limit(rule, "merchants"), limit(rule, "minutes")
            if merchants is None or minutes is None:
                continue
            window = timedelta(minutes=minutes)
            for row in await repository.holder_spread(raw, span, window, merchants, group.campaigns):
                found.append(
                    _found(
                        rule,
                        None,
                        row["campaigns"],
                        list(row["ids"])[-w.MAX_EVIDENCE_IDS :],
                        {
                            "holder": row["holder"],
                            "merchants": row["merchants"],
                            "merchant_ids": sorted(row["merchant_ids"]),
                            "until": row["at"].isoformat(),
                            "limit_merchants": merchants,
                            "limit_minutes": minutes,
                        },
                        f"{w.HOLDER_SPREAD}:{row['holder']}:{_day(row['at'])}",
                    )
                )
    return found


async def _claims(raw: Any, claims_at: datetime | None) -> list[Finding]:
    """Claims bursts on first-come campaigns, read only for campaigns whose stock moved since the last pass, each
    judged under its campaign's rules."""
    moved = await repository.claims_moved(raw)
    if not moved:
        return []
    book = await load_book(raw, moved)
    burst_rules = {
        c: [r for r in rules_for(book.rules(c), w.CLAIMS_BURST) if limit(r, "per_minute") is not None] for c in moved
    }
    watched = sorted(c for c, rules in burst_rules.items() if rules)
    if not watched:
        return []
    since = (claims_at - timedelta(minutes=1)) if claims_at is not None else datetime(2000, 1, 1, tzinfo=CHINA_TZ)
    least = min(limit(r, "per_minute") or 0 for c in watched for r in burst_rules[c])
    rows = await repository.claims_bursts(raw, watched, since, SHAPES.wallet_block_digits, least, w.MAX_EVIDENCE_IDS)
    latest = await repository.claims_latest(raw, watched)
    if latest is not None and (claims_at is None or latest > claims_at):
        await repository.move_claims_cursor(raw, latest)
    found = []
    for row in rows:
        rule = next(
            (r for r in burst_rules[row["campaign_id"]] if row["claims"] >= (limit(r, "per_minute") or 0)), None
        )
        if rule is not None:
            found.append(_claims_finding(rule, row))
    return found


def _claims_finding(rule: RiskRule, row: Any) -> Finding:
    return Finding(
        signal=w.CLAIMS_BURST,
        outcome=rule.outcome or "flag",
        merchant_id=None,
        campaign_id=row["campaign_id"],
        redemption_ids=[],
        evidence=_quoted(
            rule,
            {
                "wallet_block": row["wallet_block"],
                "claims_in_minute": row["claims"],
                "minute_start": row["minute"].isoformat(),
                "voucher_ids": list(row["voucher_ids"]),
                "first_at": row["first_at"].isoformat(),
                "last_at": row["last_at"].isoformat(),
                "limit_per_minute": limit(rule, "per_minute"),
            },
        ),
        dedupe_key=f"{w.CLAIMS_BURST}:{row['campaign_id']}:{row['wallet_block']}",
    )


async def run_pass(conn: AsyncConnection, limit_: int = PASS_LIMIT) -> PassResult:
    """A pass and its flags, in `conn`'s transaction (the caller commits)."""
    result = await detect_pass(conn, limit_)
    for finding in result.findings:
        await open_finding(conn, finding)
    return result


async def open_finding(conn: AsyncConnection, finding: Finding) -> None:
    await service.open_flag(
        conn,
        signal=finding.signal,
        outcome=finding.outcome,
        merchant_id=finding.merchant_id,
        campaign_id=finding.campaign_id,
        redemption_ids=finding.redemption_ids,
        evidence=finding.evidence,
        dedupe_key=finding.dedupe_key,
    )


async def _pass_taken(conn: AsyncConnection, limit_: int) -> int:
    return (await run_pass(conn, limit_)).taken


async def catch_up(engine: AsyncEngine, limit: int = PASS_LIMIT) -> int:
    """Passes, each committed, until one comes back short; answers how many transactions were read."""
    return await tailer.catch_up(engine, _pass_taken, limit)


async def run_forever(
    engine: AsyncEngine, interval_s: float | None = None, keep_going: Callable[[], bool] = tailer.always
) -> None:
    """The detector's loop: in every worker of an in-process app (the lock makes all but one of them idle at any
    moment), or alone in its own process under `serve`."""
    await tailer.run_forever(
        engine,
        _pass_taken,
        PASS_LIMIT,
        lambda: POLL_INTERVAL_S if interval_s is None else interval_s,
        log,
        "risk detector pass",
        keep_going,
    )


DETECTOR_NICENESS = 15  # far behind the API workers for the CPU: a pass can wait for a quiet moment, a till cannot


def run_process(settings: Any) -> None:
    """The detector's own process under `serve` (a `multiprocessing` target): its passes read and write in bulk and
    would hold a worker's event loop for milliseconds while tills wait; here they hold nobody's. Runs until its
    parent is gone."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     risk detector: %(message)s")
    os.nice(DETECTOR_NICENESS)
    asyncio.run(_serve_process(settings, os.getppid()))


async def _serve_process(settings: Any, parent_pid: int) -> None:
    from voucher_engine.db.engine import create_engine
    from voucher_engine.db.niceness import lower_backends

    if settings.database_url is None:
        raise RuntimeError("the risk detector process needs DATABASE_URL (serve sets it before starting it)")
    engine = create_engine(settings.database_url, pool_size=2, application_name="voucher-engine risk detector")
    # Its passes are SQL, run by its backends: behind the tills' backends too, where the server is on this machine.
    lower_backends(engine, settings.database_url, DETECTOR_NICENESS)
    try:
        # Until the service is gone (killed without stopping us: nothing left to watch).
        await run_forever(engine, keep_going=lambda: os.getppid() == parent_pid)
    finally:
        await engine.dispose()


async def startup(state: Any) -> None:
    """Start this worker's detector loop; none with `VE_RISK=off` (the rules off, as a throughput comparison of
    the rules on and off must include the window rules' cost), nor under `serve`, which runs it in a process of its
    own (`run_process`)."""
    if state.settings.risk == "off":  # VE_RISK=off: no risk rules at all in this process (what they cost is measured)
        return
    if state.settings.risk_detector == "process":
        return
    state.extras[STATE_KEY] = asyncio.create_task(run_forever(state.engine))


async def shutdown(state: Any) -> None:
    task = state.extras.pop(STATE_KEY, None)
    if task is not None:
        task.cancel()
        # The app bounds how long a room's stop may take (api/app.py), for every room alike.
        await asyncio.gather(task, return_exceptions=True)
