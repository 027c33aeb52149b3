"""`tapeflow status`: can each service be reached, how far behind are the flows, how fresh
is what they wrote.

Lag comes from the consumer groups the flows commit their snapshot offsets to
(sources/kafka/flow_source.py): for every group named `<prefix>tapeflow-<flow>[-shardIofK]`, the
end offset minus the committed offset, summed per topic. Freshness is the newest trade,
candle and execution in ClickHouse. Nothing is started: an embedded Postgres that is not
running, or an embedded ClickHouse held by a running flow, is reported as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from jobs.store_lock import open_for_reading
from schemas.catalogue import TOPIC_EXECUTIONS, TOPIC_MARKS, TOPIC_QUOTES, TOPIC_TRADES
from schemas.sql_files import statement
from tapeflow.errors import StoreUnavailableError
from tapeflow.services.dsn import redact as _redact
from tapeflow.services.kafka import PROBE_LOG, admin_client, consumer_groups, group_lags
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

INPUT_TOPICS = (TOPIC_TRADES, TOPIC_QUOTES, TOPIC_EXECUTIONS, TOPIC_MARKS)
FLOWS = ("market", "trading", "all")


@dataclass(frozen=True)
class ServiceState:
    name: str
    address: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class TopicLag:
    group: str
    topic: str
    lag: int
    """Messages behind the end, summed over the partitions the group has committed."""
    partitions: int


@dataclass(frozen=True)
class StatusReport:
    services: list[ServiceState]
    lags: list[TopicLag] = field(default_factory=list)
    latest: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.services)

    def lines(self) -> list[str]:
        out = ["services:"]
        for s in self.services:
            mark = "ok  " if s.ok else "DOWN"
            out.append(f"  {mark} {s.name:10} {s.address}" + (f"  ({s.detail})" if s.detail
                                                                 else ""))
        out.append("consumer lag (messages behind the end, per flow group and topic):")
        out += [f"  {lag.group:32} {lag.topic:28} {lag.lag:>10,}  ({lag.partitions} partitions)"
                for lag in self.lags] or ["  no flow has committed offsets yet"]
        if self.latest:
            out.append("latest in ClickHouse (UTC):")
            for name, ts in self.latest.items():
                out.append(f"  {name:18} {ts.isoformat() if ts is not None else 'none yet'}")
        return out


def _kafka(settings: Settings, timeout_s: float) -> tuple[ServiceState, list[TopicLag]]:
    address = settings.kafka.bootstrap
    conf = settings.kafka_config()
    admin = admin_client(conf, quiet=True, timeout_s=timeout_s)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except Exception as exc:
        return ServiceState("kafka", address, False, f"no answer within {timeout_s:g} s: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"), []
    topics = {settings.topic(t): len(meta.topics[settings.topic(t)].partitions)
              for t in INPUT_TOPICS if settings.topic(t) in meta.topics}
    state = ServiceState("kafka", address, True, f"{len(meta.brokers)} broker(s), "
                         f"{len(topics)} of {len(INPUT_TOPICS)} input topics")
    prefix = f"{settings.kafka.topic_prefix}tapeflow-"
    listed = consumer_groups(conf, prefix, timeout_s)
    groups = ([g for g in listed if g.removeprefix(prefix).split("-shard")[0] in FLOWS]
              if listed is not None else [prefix + flow for flow in FLOWS])
    lags = [TopicLag(*row) for row in
            group_lags({**conf, "logger": PROBE_LOG}, groups, topics, timeout_s)]
    return state, lags


def _postgres(settings: Settings, timeout_s: float) -> ServiceState:
    if settings.postgres.dsn is None:
        pgdata = (settings.home / "postgres").resolve()
        if not _postmaster_alive(pgdata):
            # Not a fault: the embedded server is started on demand by whatever needs it.
            return ServiceState("postgres", f"embedded {pgdata}", True,
                                "not running; started on demand by the flows and the demo")
        return ServiceState("postgres", f"embedded {pgdata}", True, "running")
    dsn = settings.postgres.dsn.get_secret_value()
    try:
        with connect_postgres(dsn, settings.postgres.schema,
                              connect_timeout=max(1, round(timeout_s))) as conn:
            conn.execute("SELECT 1")
    except StoreUnavailableError as exc:
        return ServiceState("postgres", _redact(dsn), False, str(exc))
    return ServiceState("postgres", _redact(dsn), True)


def _postmaster_alive(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def _clickhouse(settings: Settings) -> tuple[ServiceState, dict[str, datetime | None]]:
    url = settings.clickhouse_url()
    address = _redact(url)
    try:
        client = open_for_reading(settings)
        row = client.query(statement("queries/status_clickhouse.sql", "latest_times"))
        names = row.column_names
        values = row.result_rows[0]
        client.close()
    except StoreUnavailableError as exc:
        return ServiceState("clickhouse", address, False, str(exc)), {}
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__
        hint = "; run `tapeflow init`" if "UNKNOWN_TABLE" in str(exc) else ""
        return ServiceState("clickhouse", address, False, first[:300] + hint), {}
    return ServiceState("clickhouse", address, True), dict(zip(names, values, strict=True))


def run_status(settings: Settings, timeout_s: float = 5.0) -> StatusReport:
    kafka, lags = _kafka(settings, timeout_s)
    clickhouse, latest = _clickhouse(settings)
    return StatusReport([kafka, _postgres(settings, timeout_s), clickhouse], lags, latest)
