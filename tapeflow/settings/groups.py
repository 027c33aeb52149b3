"""The settings groups: one frozen `BaseSettings` per concern, read from
`TAPEFLOW_<GROUP>_*` variables. Each field's description is its line in the README's table."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from tapeflow.core.fixedpoint import to_units
from tapeflow.core.market.candles import CandleConfig
from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG, MarketConfig
from tapeflow.core.trading.order_book import OrderRetention
from tapeflow.core.trading.shard_step import ShardConfig
from tapeflow.settings.base import (
    BATCH_MERGE_WAIT_S,
    LOCAL_KAFKA_PORT,
    TOPIC_PREFIX_PATTERN,
    Group,
    identifier,
    us,
)


class KafkaSettings(Group):
    """The Kafka cluster, its security settings (passed to librdkafka) and the topics."""

    group: ClassVar[str] = "kafka"

    bootstrap: str = Field(f"127.0.0.1:{LOCAL_KAFKA_PORT}",
                           description="Bootstrap servers; the local broker when it names this "
                           "machine.")
    security_protocol: str | None = Field(None, description="librdkafka security.protocol.")
    sasl_mechanism: str | None = Field(None, description="librdkafka sasl.mechanism.")
    sasl_username: str | None = Field(None, description="librdkafka sasl.username.")
    sasl_password: SecretStr | None = Field(None, description="librdkafka sasl.password.")
    ssl_ca_location: str | None = Field(None, description="librdkafka ssl.ca.location.")
    ssl_certificate_location: str | None = Field(
        None, description="librdkafka ssl.certificate.location (client certificate, mTLS).")
    ssl_key_location: str | None = Field(None, description="librdkafka ssl.key.location.")
    ssl_key_password: SecretStr | None = Field(
        None, description="librdkafka ssl.key.password, for an encrypted client key.")
    topic_prefix: str = Field("", description="Prepended to every topic name (isolation of "
                              "environments and tests).")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of the topics `tapeflow "
                            "init` creates.")
    source_batch_size: int = Field(1000, ge=1, le=100_000, description="Messages a flow's "
                                   "Kafka source reads per poll of a partition.")

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not TOPIC_PREFIX_PATTERN.match(value):
            raise ValueError(f"{value!r} may hold only letters, digits, '.', '_' and '-'")
        return value

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_key_password is not None:
            conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return conf


class SchemaRegistrySettings(Group):
    """Where Avro schema ids come from: a Confluent-compatible registry, or the catalogue."""

    group: ClassVar[str] = "schema_registry"

    url: str | None = Field(None, description="Registry URL; unset: the local catalogue.")
    basic_auth: SecretStr | None = Field(None, description="Registry credentials, user:password.")
    catalogue: Path | None = Field(
        None, description="catalogue.json of the local catalogue when there is no registry "
        "(unset: the repository's schemas/catalogue.json); docs/schema-evolution.md.")


class ClickHouseSettings(Group):
    """The analytics store."""

    group: ClassVar[str] = "clickhouse"

    dsn: SecretStr | None = Field(None, description="chdb:///path (embedded) or "
                                  "http(s)://user:pw@host:8123; unset: chDB under HOME.")
    database: str = Field("tapeflow", description="Database of Tapeflow's tables.")
    batch_rows: int = Field(20_000, ge=1, description="A flow's ClickHouse writer inserts once "
                            "this many rows are buffered (and at every snapshot).")
    batch_age_s: float = Field(1.0, gt=0, description="... or once its oldest buffered row is "
                               "this old.")

    @field_validator("database")
    @classmethod
    def _plainidentifier(cls, value: str) -> str:
        return identifier(value)


with warnings.catch_warnings():
    # `schema` is the knob's name (TAPEFLOW_POSTGRES_SCHEMA); it shadows pydantic's deprecated
    # `BaseModel.schema()`, which nothing here uses.
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class PostgresSettings(Group):
        """The operational store."""

        group: ClassVar[str] = "postgres"

        dsn: SecretStr | None = Field(None, description="Any libpq DSN; unset: embedded "
                                      "Postgres under HOME.")
        schema: str = Field(  # type: ignore[assignment]
            "tapeflow", description="Schema of Tapeflow's tables.")

        @field_validator("schema")
        @classmethod
        def _plainidentifier(cls, value: str) -> str:
            return identifier(value)


class MarketSettings(Group):
    """Tuning of the market core (docs/market-core.md): its state bounds and clocks."""

    group: ClassVar[str] = "market"

    seq_window: int = Field(
        4096, ge=16, le=1_000_000,
        description="Sequence numbers remembered per (venue, symbol, kind) to detect "
        "duplicates; older ones are rejected as seq_too_old (bounds the filter's memory).")
    allowed_lateness_s: float = Field(
        5.0, ge=0, description="Candles: event time a bucket stays open past its end.")
    late_horizon_s: float = Field(
        3600.0, ge=0, description="Candles: how far behind the watermark a late trade still "
        "corrects its candle; later ones are rejected too_late (bounds retained buckets).")
    idle_timeout_s: float = Field(
        5.0, ge=0, description="Candles: wall time without a trade after which a symbol's "
        "finished buckets are emitted without waiting for the watermark.")
    merge_wait_s: float | None = Field(
        None, ge=0, description="Event time trades may run ahead of quotes (or back) before "
        "being judged without them; unset: 30 s, and 3600 s for `--batch` runs.")
    mark_interval_s: float = Field(
        1.0, ge=0, description="At most one mark per symbol per this much event time "
        "(0: every clean trade).")
    quiet_s: float = Field(
        5.0, ge=0, description="Wall time without ticks after which a symbol's held ticks "
        "and pending mark are released.")

    def core_config(self, *, batch: bool = False) -> MarketConfig:
        """The market core's configuration: what the stream and the backfill both judge with.

        The merge wait of a batch run defaults to `BATCH_MERGE_WAIT_S`: reading a backlog,
        Bytewax polls each partition in turn and quotes are ~3x as dense as trades, so trades
        run ahead of their quotes by about 2/3 of the backlog's span (docs/flows.md). A batch
        run ends, and the end of input releases every held tick in merge order, so it can
        afford to wait and judge every trade against the quotes an uninterrupted live stream
        would have shown it."""
        wait_s = self.merge_wait_s
        if wait_s is None and batch:
            wait_s = BATCH_MERGE_WAIT_S
        return MarketConfig(
            filter=FilterConfig(seq_window=self.seq_window),
            candles=CandleConfig(allowed_lateness_us=us(self.allowed_lateness_s),
                                 retention_us=us(self.late_horizon_s),
                                 idle_timeout_us=us(self.idle_timeout_s)),
            mark_interval_us=us(self.mark_interval_s),
            merge_max_wait_us=(DEFAULT_MARKET_CONFIG.merge_max_wait_us if wait_s is None
                               else us(wait_s)),
            quiet_us=us(self.quiet_s),
        )


class TradingSettings(Group):
    """Tuning of the trading core (docs/trading-core.md)."""

    group: ClassVar[str] = "trading"

    order_terminal_ttl_s: float = Field(
        86400.0, gt=0, description="Event time a filled/cancelled order is kept (to recognise "
        "late duplicates) before it is forgotten.")
    order_max_terminal: int = Field(
        10_000, ge=1, description="At most this many finished orders kept per account.")
    initial_cash: Decimal = Field(
        Decimal(1_000_000), description="Cash of an account the flow has not seen before.")
    pnl_interval_s: float = Field(
        60.0, gt=0, description="Event-time width of a pnl_snapshots bucket.")
    limits_refresh_s: float = Field(
        30.0, gt=0, description="Wall time between reloads of risk limits and sessions from "
        "Postgres.")
    timer_s: float = Field(
        5.0, gt=0, description="Wall time between runs of the time-driven risk rules "
        "(stale marks, turnover expiry) and provisional P&L snapshots.")

    def core_config(self) -> ShardConfig:
        """The trading core's configuration (a shard of accounts)."""
        return ShardConfig(
            initial_cash=to_units(self.initial_cash),
            snapshot_interval_us=us(self.pnl_interval_s),
            retention=OrderRetention(max_terminal=self.order_max_terminal,
                                     terminal_ttl_us=us(self.order_terminal_ttl_s)))


class RuntimeSettings(Group):
    """How a process runs: logs, metrics, recovery, retries, caches."""

    group: ClassVar[str] = ""

    log_level: str = Field("WARNING", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: str = Field("text", description="text, or json: one JSON object per line.")
    debug: bool = Field(False, description="Show tracebacks instead of one-line errors.")
    cache_dir: Path | None = Field(None, description="Where the local broker's jars are cached "
                                   "(unset: ~/.cache/tapeflow).")
    metrics_port: int | None = Field(
        9464, ge=0, le=65535,
        description="Prometheus /metrics port of `tapeflow run` (0: off); a local cluster's "
        "process i serves port + i (docs/metrics.md).")
    service_timeout_s: float = Field(
        10.0, gt=0, description="How long a flow waits for each service to answer before it "
        "starts (pre-flight).")
    sink_retry_deadline_s: float = Field(
        600.0, gt=0, description="How long a flow's sink keeps retrying a store or broker that "
        "does not answer (the flow waits meanwhile) before the flow stops so a restart replays "
        "(docs/faults.md).")
    snapshot_interval_s: float = Field(
        10.0, ge=0.1, description="Wall time between recovery snapshots of `tapeflow run`.")
    recovery_dir: Path | None = Field(
        None, description="Recovery stores of `tapeflow run` (unset: HOME/recovery/FLOW).")
    recovery_partitions: int = Field(
        1, ge=1, description="Partitions of a new recovery store (fixed once created).")
    workers: int = Field(1, ge=1, description="Worker threads per `tapeflow run` process.")
    web_host: str = Field("127.0.0.1", description="Address the live view (`tapeflow serve`, "
                          "`--serve`) listens on; beyond localhost, put TLS in front of it.")
    web_port: int = Field(8080, ge=1, le=65535, description="Port of the live view.")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"{value!r} is not a log level (DEBUG, INFO, WARNING, ERROR)")
        return value.upper()

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value.lower() not in ("text", "json"):
            raise ValueError(f"{value!r} is not text or json")
        return value.lower()


class AccessSettings(Group):
    """What a subscriber may see (docs/alerts.md, docs/security.md)."""

    group: ClassVar[str] = "access"

    alerts_allowed_accounts: Annotated[frozenset[str] | None, NoDecode] = Field(
        None,
        description="Accounts whose alerts `tapeflow alerts` may deliver (comma list); unset: "
        "all. A convenience of the subscription, not enforcement; alerts without an account are "
        "withheld from a restricted subscriber (docs/alerts.md).")

    viewers_file: Path | None = Field(
        None, description="JSON file of the live view's viewers (name -> password hash and "
        "accounts); unset: one local viewer who sees everything (docs/live-view.md).")

    @field_validator("alerts_allowed_accounts", mode="before")
    @classmethod
    def _account_list(cls, value: object) -> object:
        # The environment gives "A,B"; an empty list would silently allow nothing, so it is
        # refused rather than read as "unset".
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
            if not value:
                raise ValueError("give at least one account, or leave it unset for all")
        return value


