"""Prometheus metrics and committed offsets of a running `tapeflow run all`.

A labelled synthetic market (faults, garbage frames, execution reports) goes through the
real command in a subprocess, running continuously with its metrics port. Scraped once the
flow has caught up, the counters must equal what the input holds: ticks in per kind, clean
and rejected by reason (the generator's labels), dead letters (the garbage frames),
execution reports by outcome, rows written to ClickHouse (the clean ticks), and the sink
batch histograms. The consumer group of the flow must hold committed offsets at the end of
every input partition, so standard lag tools see a lag of zero; `tapeflow status` reports
that lag, the store held by the flow, and once it stopped, the newest trade.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from jobs.generate import produce_market
from jobs.init import create_topics, init_postgres
from jobs.local.ports import free_port
from schemas.catalogue import TOPIC_EXECUTIONS, TOPIC_QUOTES, TOPIC_TRADES, LocalCatalogue
from schemas.codec import Codec
from sources.kafka.flow_source import consumer_group
from sources.kafka.topic_reader import end_offsets
from sources.synthetic import MarketSpec, generate_market
from tapeflow.settings import Settings
from tests.support.kafka_env import kafka_env
from tests.support.locations import REPO
from tests.support.run_outputs import run_chdb

SPEC = MarketSpec(seed=13, n_symbols=4, n_accounts=3, duration_s=20.0, order_rate=5.0,
                  fault_rate=0.03)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _sum(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
         **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in metrics.items() if n == name and want <= set(lab))


def _status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tapeflow.cli", "status", "--timeout", "5"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_metrics_and_committed_offsets_of_a_running_flow(settings: Settings,
                                                         tmp_path: Path) -> None:
    assert settings.postgres.dsn is not None
    url = f"chdb://{tmp_path / 'chdb'}"
    run_chdb("init", url, settings.clickhouse.database)
    init_postgres(settings, settings.postgres.dsn.get_secret_value())
    create_topics(settings)
    market = generate_market(SPEC)
    produce_market(settings, market, Codec(LocalCatalogue.load()))

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    env.update({
        **kafka_env(settings),
        "TAPEFLOW_CLICKHOUSE_DSN": url,
        "TAPEFLOW_CLICKHOUSE_DATABASE": settings.clickhouse.database,
        "TAPEFLOW_POSTGRES_DSN": settings.postgres.dsn.get_secret_value(),
        "TAPEFLOW_POSTGRES_SCHEMA": settings.postgres.schema,
        "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "TAPEFLOW_HOME": str(tmp_path / "home"),
        "TAPEFLOW_METRICS_PORT": str(port),
    })
    log = tmp_path / "flow.log"
    cmd = [sys.executable, "-m", "tapeflow.cli", "run", "all", "--snapshot-interval", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    labels = [lab for lab in market.labels if lab.kind in ("trade", "quote")]
    ticks = len(market.trades) + len(market.quotes)
    try:
        deadline = time.monotonic() + 90
        metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                metrics = _scrape(port)
            except OSError:
                metrics = {}
            judged = (_sum(metrics, "tapeflow_ticks_clean_total")
                      + _sum(metrics, "tapeflow_ticks_rejected_total"))
            # Every tick judged: the last ones wait (5 s of quiet) for the quotes that might
            # still come before the merge releases them.
            done = (_sum(metrics, "tapeflow_ticks_in_total") == ticks == judged
                    and _sum(metrics, "tapeflow_executions_total") == len(market.executions))
            if done:
                time.sleep(3)  # a few snapshots more: offsets committed, batches flushed
                metrics = _scrape(port)
                break
            time.sleep(0.5)
        else:
            summary = {name: _sum(metrics, name) for name in (
                "tapeflow_ticks_in_total", "tapeflow_ticks_clean_total",
                "tapeflow_ticks_rejected_total", "tapeflow_executions_total")}
            raise AssertionError(f"the flow did not catch up ({ticks} ticks, "
                                 f"{len(market.executions)} reports): {summary}; "
                                 f"{log.read_text()[-2000:]}")
        group = consumer_group(settings, "all", None)
        consumer = Consumer({**settings.kafka_config(), "group.id": group})
        try:
            committed = {}
            for name in (TOPIC_TRADES, TOPIC_QUOTES, TOPIC_EXECUTIONS):
                topic = settings.topic(name)
                ends = end_offsets(settings.kafka_config(), topic)
                parts = [TopicPartition(topic, p) for p in ends]
                committed[topic] = ({tp.partition: tp.offset
                                     for tp in consumer.committed(parts, timeout=10)}, ends)
        finally:
            consumer.close()
        running = _status(env)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    stopped = _status(env)

    for kind in ("trade", "quote"):
        mine = [lab for lab in labels if lab.kind == kind]
        assert _sum(metrics, "tapeflow_ticks_in_total", kind=kind) == len(mine)
        clean = sum(1 for lab in mine if lab.expected_reason is None)
        assert _sum(metrics, "tapeflow_ticks_clean_total", kind=kind) == clean
        rejected = Counter(lab.expected_reason for lab in mine if lab.expected_reason)
        for reason, n in rejected.items():
            assert _sum(metrics, "tapeflow_ticks_rejected_total", kind=kind,
                        reason=reason) == n, reason
        assert _sum(metrics, "tapeflow_ticks_rejected_total", kind=kind) == sum(
            rejected.values())
    assert _sum(metrics, "tapeflow_dead_letters_total") == len(market.garbage)
    assert _sum(metrics, "tapeflow_sink_rows_total", store="clickhouse", table="trades") == sum(
        1 for lab in labels if lab.kind == "trade" and lab.expected_reason is None)
    assert _sum(metrics, "tapeflow_sink_batch_rows_count", store="postgres") > 0
    assert _sum(metrics, "tapeflow_candles_total", event="emitted") > 0
    assert _sum(metrics, "tapeflow_executions_total", outcome="applied") > 0
    assert any(n == "bytewax_kafka_consumer_lag" for n, _ in metrics)
    for topic, (got, ends) in committed.items():
        assert got == ends, topic

    # `tapeflow status` while the flow runs: Kafka and Postgres answer, the lag is zero, and
    # the embedded ClickHouse is reported as held by the flow's process (exit 1, no traceback).
    assert running.returncode == 1 and "Traceback" not in running.stderr
    assert re.search(r"ok +kafka", running.stdout) and re.search(r"ok +postgres", running.stdout)
    held = rf"DOWN clickhouse .*held by process {proc.pid}"
    assert re.search(held, running.stdout), running.stdout
    trades_lag = re.search(rf"{group} +{settings.topic(TOPIC_TRADES)} +(\d+)", running.stdout)
    assert trades_lag and int(trades_lag.group(1)) == 0, running.stdout
    # Once it stopped, the store answers and the newest trade is the newest clean trade.
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    newest = max(market.trades[lab.row].ts_event for lab in labels
                 if lab.kind == "trade" and lab.expected_reason is None)
    shown = datetime.fromtimestamp(newest / 1e6, UTC).replace(tzinfo=None).isoformat()
    assert f"latest_trade       {shown}" in stopped.stdout, stopped.stdout
