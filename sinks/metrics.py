"""Prometheus metrics of the store writers: batch sizes, write latencies, retries.

Registered in prometheus_client's default registry, which `tapeflow run --metrics-port`
serves (docs/metrics.md lists every metric). Recorded once per batch, never per row.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SINK_BATCH_ROWS = Histogram(
    "tapeflow_sink_batch_rows", "Rows per batch written to a store, by store and table.",
    ["store", "table"], buckets=(1, 10, 100, 500, 1_000, 5_000, 10_000, 20_000, 50_000))
SINK_WRITE_SECONDS = Histogram(
    "tapeflow_sink_write_seconds",
    "Seconds to write one batch to a store (retries included), by store and table.",
    ["store", "table"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SINK_RETRIES = Counter(
    "tapeflow_sink_retries_total", "Failed store writes that were tried again, by store.",
    ["store"])
SINK_DEAD_LETTERS = Counter(
    "tapeflow_sink_dead_letters_total",
    "Records a store refused for good, sent to the dead-letter topic, by store and reason.",
    ["store", "reason"])
SINK_ROWS = Counter(
    "tapeflow_sink_rows_total", "Rows written to a store, by store and table.",
    ["store", "table"])


def record_batch(store: str, table: str, rows: int, seconds: float) -> None:
    SINK_BATCH_ROWS.labels(store, table).observe(rows)
    SINK_WRITE_SECONDS.labels(store, table).observe(seconds)
    SINK_ROWS.labels(store, table).inc(rows)


def record_retry(store: str) -> None:
    SINK_RETRIES.labels(store).inc()


def record_dead_letter(store: str, reason: str) -> None:
    SINK_DEAD_LETTERS.labels(store, reason).inc()
