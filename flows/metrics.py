"""Prometheus metrics of the flows (docs/metrics.md lists them all).

Why the market side is a collector and not counters bumped per tick: the core already counts
every verdict in its per-symbol state (`FilterState.counters`, `CandleState.counters`) and the
decoder counts what it decoded in a plain dict, so a scrape sums those over the live steps of
this process, and the hot path takes no metric lock.
The counts live in the recovery snapshots too, so after a restart they resume from the last
snapshot (a replayed tick is counted once the state that saw it is restored, not twice).

The trading side is bumped per output (thousands of reports a second, not a hot path). The
Kafka consumer lag per partition is Bytewax's own gauge, `bytewax_kafka_consumer_lag`; the
committed offsets (sources/kafka/flow_source.py) show the same lag to standard tools.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from tapeflow.core.market.rejections import RejectReason
from tapeflow.core.trading.shard_step import (
    CashResult,
    ExecutionResult,
    ShardOutput,
    StateChange,
)

log = logging.getLogger("tapeflow.metrics")

DEAD_LETTERS = Counter("tapeflow_dead_letters_total",
                       "Records sent to the dead-letter topic, by flow and reason.",
                       ["flow", "reason"])
EXECUTIONS = Counter("tapeflow_executions_total",
                     "Execution reports by outcome: applied, duplicate (ignored), invalid.",
                     ["outcome"])
ALERTS = Counter("tapeflow_alerts_total", "Risk alerts raised, by rule and severity.",
                 ["rule", "severity"])

_SEQ_COUNTERS = {"seq_gaps": "gaps", "seq_missing": "missing", "seq_gap_fills": "gap_fills",
                 "seq_resets": "resets"}
_TICK_KINDS = ("trade", "quote")
_REASONS = frozenset(RejectReason)
_OUTCOMES = {"Applied": "applied", "Duplicate": "duplicate", "Invalid": "invalid"}


class MarketStateCollector(Collector):
    """Sums the counters of every live market step state of this process at scrape time."""

    def __init__(self) -> None:
        self._logics: weakref.WeakSet[Any] = weakref.WeakSet()
        self._decoders: weakref.WeakSet[Any] = weakref.WeakSet()

    def track_decoder(self, decoder: Any) -> None:
        """Count `decoder.ticks_in` ({"Trade": n, "Quote": n}) from now on."""
        self._decoders.add(decoder)

    def track(self, logic: Any) -> None:
        """Count the counters of `logic.states()` (the per-symbol states of a market step)
        from now on (until `logic` is gone)."""
        self._logics.add(logic)

    def _totals(self) -> tuple[dict[str, int], dict[str, int]]:
        filters: dict[str, int] = defaultdict(int)
        candles: dict[str, int] = defaultdict(int)
        for logic in list(self._logics):
            for state in logic.states():
                # Copies first: the worker thread may add a key while this one reads.
                for key, n in dict(state.filter.counters).items():
                    filters[key] += n
                for key, n in dict(state.candles.counters).items():
                    candles[key] += n
        return filters, candles

    def collect(self) -> Iterator[CounterMetricFamily]:
        ticks_in = CounterMetricFamily("tapeflow_ticks_in",
                                       "Ticks decoded from the market topics, by kind.",
                                       labels=["kind"])
        decoded: dict[str, int] = dict.fromkeys(_TICK_KINDS, 0)
        for decoder in list(self._decoders):
            for record, n in dict(decoder.ticks_in).items():
                decoded[record.lower()] += n
        for kind, n in decoded.items():
            ticks_in.add_metric([kind], n)
        yield ticks_in
        filters, candles = self._totals()
        clean = CounterMetricFamily("tapeflow_ticks_clean", "Ticks the filter accepted.",
                                    labels=["kind"])
        rejected = CounterMetricFamily(
            "tapeflow_ticks_rejected", "Ticks rejected, by kind and reason code (the filter's "
            "reasons, and too_late from the candle builder).", labels=["kind", "reason"])
        seq = CounterMetricFamily("tapeflow_feed_sequence",
                                  "Venue sequence events: gaps, missing numbers, gap fills, "
                                  "resets.", labels=["kind", "event"])
        too_late = candles.get("too_late", 0) + candles.get("non_positive", 0)
        events = CounterMetricFamily("tapeflow_filter_events",
                                     "Filter decisions that are not verdicts: re-anchors to a "
                                     "new price level, outlier checks skipped for stale "
                                     "references.", labels=["kind", "event"])
        for key, n in sorted(filters.items()):
            kind, _, name = key.partition(".")
            if name == "accepted":
                # A trade the filter passed but the candle builder refused (too late) is not
                # clean: it goes to rejected_ticks, not to trades.
                clean.add_metric([kind], n - too_late if kind == "trade" else n)
            elif name in _SEQ_COUNTERS:
                seq.add_metric([kind, _SEQ_COUNTERS[name]], n)
            elif name in _REASONS:
                rejected.add_metric([kind, name], n)
            else:  # the filter's own notes: outlier checks skipped, re-anchors
                events.add_metric([kind, name], n)
        rejected.add_metric(["trade", "too_late"], candles.get("too_late", 0))
        if candles.get("non_positive", 0):
            rejected.add_metric(["trade", "candle_non_positive"], candles["non_positive"])
        emitted = CounterMetricFamily(
            "tapeflow_candles", "Candles emitted: first emissions (incl. idle closes) and late "
            "corrections.", labels=["event"])
        emitted.add_metric(["emitted"], candles.get("emitted", 0) + candles.get("idle_closes", 0))
        emitted.add_metric(["corrected"], candles.get("corrections", 0))
        yield from (clean, rejected, seq, events, emitted)


MARKET_STATES = MarketStateCollector()
REGISTRY.register(MARKET_STATES)


_EXECUTION_COUNTERS: dict[type, Any] = {}
_ALERT_COUNTERS: dict[tuple[str, str], Any] = {}


def count_trading(outputs: Iterable[ShardOutput | Any]) -> None:
    """Count one trading step's outcomes and alerts. Called for every report: the labelled
    counters are looked up once each and kept (prometheus' `labels()` costs more than the
    increment)."""
    for item in outputs:
        if isinstance(item, ExecutionResult):
            kind = type(item.output.outcome)
            counter = _EXECUTION_COUNTERS.get(kind)
            if counter is None:
                counter = _EXECUTION_COUNTERS[kind] = EXECUTIONS.labels(
                    _OUTCOMES.get(kind.__name__, "other"))
            counter.inc()
        if isinstance(item, ExecutionResult | CashResult | StateChange):
            for alert in item.output.alerts:
                key = (alert.rule, str(alert.severity))
                counter = _ALERT_COUNTERS.get(key)
                if counter is None:
                    counter = _ALERT_COUNTERS[key] = ALERTS.labels(*key)
                counter.inc()


def serve(port: int | None, process_id: int | None = None,
          host: str = "127.0.0.1") -> int | None:
    """Serve /metrics on `host`:`port` (+ the process id in a local cluster); None or 0: off.

    `host` is the metrics bind address setting: this machine only unless configured (the
    page names topics, accounts' counts and the flows' state; docs/security.md). A port
    that is taken is logged, not fatal: metrics must never stop a flow."""
    if not port:
        return None
    port += process_id or 0
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics not served: %s:%d: %s", host, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics", host, port)
    return port

