"""Prometheus metrics (prometheus-client), one set per process, added up across `serve --workers N`.

`serve` points PROMETHEUS_MULTIPROC_DIR at an empty directory of its own before any worker starts (multiproc.py);
prometheus-client then keeps each process's figures in files there, and whichever worker answers `GET /metrics`
adds them all up. Without it (tests, scripts) the figures are this process's own.

Names follow Prometheus conventions (`_total` counters, base units: seconds, fen). Labels never name a merchant, a
holder or a wallet; campaign ids appear only on the escrow gauge.

The hot paths pay for an observation with a dictionary lookup of a cached child and two increments; the labelled
children are made once per (route, method, status) and kept.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MAX_ESCROW_SERIES = 1000  # campaigns shown on the escrow gauge, most recently opened first


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class Metrics:
    """This process's metric objects (one instance: Metrics.get())."""

    _instance: ClassVar[Metrics | None] = None

    def __init__(self) -> None:
        self.requests = Counter(
            "ve_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
        )
        self.latency = Histogram(
            "ve_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
        )
        self.redemptions = Counter(
            "ve_redemption_outcomes_total",
            "Redemption and quote answers, by kind and outcome code "
            "(`settled`, `replayed`, `quoted` or the refusal's stable code).",
            ["kind", "code"],
        )
        self.batch_size = Histogram(
            "ve_redemption_batch_size", "Jobs per redemption micro-batch.", buckets=BATCH_BUCKETS
        )
        self.write_ways = Counter(
            "ve_write_ways_total",
            "Redemption batches and refunds written, by the way they went: `unlocked` (read without locks, written in "
            "one statement) or `locked` (the unlocked way's write was refused because what it read had changed, or "
            "the case needs locks: a daily cap, a risk flag, a refund's retry or refusal, a closed campaign).",
            ["kind", "way"],
        )
        self.deliveries = Counter(
            "ve_webhook_deliveries_total",
            "Webhook delivery attempts ended, by event type and outcome "
            "(`delivered`, `retrying`, `failed` = given up).",
            ["type", "outcome"],
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # Labelled children of the two-label counters, made once: (counter, its labels) -> child.
        self._children: dict[tuple[Counter, str, str], Any] = {}

    @classmethod
    def get(cls) -> Metrics:
        if cls._instance is None:
            cls._instance = Metrics()
        return cls._instance

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def redemption(self, kind: str, code: str) -> None:
        self._count(self.redemptions, kind, code)

    def write_way(self, kind: str, way: str) -> None:
        self._count(self.write_ways, kind, way)

    def _count(self, counter: Counter, first: str, second: str) -> None:
        key = (counter, first, second)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(first, second)
        child.inc()

    def batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def webhook_delivery(self, type_: str, outcome: str) -> None:
        self.deliveries.labels(type_, outcome).inc()


def exposition(database_figures: dict[str, Any]) -> bytes:
    """The text of GET /metrics: every process's counters and histograms, then gauges read from the database now."""
    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        from prometheus_client import REGISTRY as registry
    return generate_latest(registry) + generate_latest(_Snapshot(database_figures))


class _Snapshot(CollectorRegistry):
    """Gauges whose truth is in PostgreSQL (shared by every worker), read at scrape time."""

    def __init__(self, figures: dict[str, Any]) -> None:
        super().__init__(auto_describe=False)
        self._figures = figures

    def collect(self):
        f = self._figures
        yield _gauge(
            "ve_webhook_deliveries_pending",
            "Webhook deliveries waiting for a first try or a retry.",
            f.get("webhook_pending", 0),
        )
        yield _gauge(
            "ve_webhook_deliveries_failed",
            "Webhook deliveries given up and still kept (30 days).",
            f.get("webhook_failed", 0),
        )
        yield _gauge(
            "ve_webhook_outbox_events",
            "Events written by their causes and not yet fanned out.",
            f.get("webhook_outbox", 0),
        )
        yield _gauge(
            "ve_webhook_ledger_backlog_transactions",
            "Sequenced ledger transactions the webhook fan-out has not read yet.",
            f.get("webhook_ledger_behind", 0),
        )
        yield _gauge(
            "ve_webhook_oldest_due_seconds",
            "How long the oldest due webhook delivery has waited.",
            f.get("webhook_oldest_due_s", 0.0),
        )
        yield _gauge(
            "ve_ledger_unsequenced_transactions",
            "Committed ledger transactions still without a seq.",
            f.get("ledger_unsequenced", 0),
        )
        yield _gauge(
            "ve_ledger_sequencing_lag_seconds",
            "Age of the oldest committed ledger transaction still without a seq (0 when none).",
            f.get("ledger_lag_s", 0.0),
        )
        escrow = GaugeMetricFamily(
            "ve_campaign_escrow_balance_fen",
            "What each campaign's escrow account holds, in fen.",
            labels=["campaign_id"],
        )
        for campaign_id, balance in f.get("escrow", []):
            escrow.add_metric([campaign_id], balance)
        yield escrow


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value or 0))
