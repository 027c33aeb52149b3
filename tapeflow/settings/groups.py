"""The settings groups: one frozen `BaseSettings` per concern, read from
`TAPEFLOW_<GROUP>_*` variables. Each field's description is its line in the README's table."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from tapeflow.core.fixedpoint import to_units
from tapeflow.core.market.candles import CandleConfig
from tapeflow.core.market.conditions import (
    DEFAULT_CODES,
    DEFAULT_CONDITION_RULES,
    EFFECT_NAMES,
    ConditionRules,
    ConditionTable,
)
from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.sequence import SeqMode
from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG, MarketConfig
from tapeflow.core.trading.order_book import OrderRetention
from tapeflow.core.trading.shard_step import ShardConfig
from tapeflow.settings.base import (
    BATCH_MERGE_WAIT_S,
    LOCAL_KAFKA_PORT,
    TOPIC_PREFIX_PATTERN,
    Group,
    identifier,
    name_list,
    name_mapping,
    us,
)

KafkaRole = Literal["market", "trading"]
"""The components with a principal of their own (docs/security.md); every other client uses
the SASL user of the settings."""
KAFKA_ROLES: tuple[KafkaRole, ...] = get_args(KafkaRole)


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
    market_username: str = Field(
        "tapeflow-market", description="The market flow's own principal (SASL user), used "
        "with its password below; `tapeflow init` grants it the market flow's ACLs.")
    market_password: SecretStr | None = Field(
        None, description="Password of the market flow's principal; unset: the market flow "
        "connects as TAPEFLOW_KAFKA_SASL_USERNAME.")
    trading_username: str = Field(
        "tapeflow-trading", description="The trading flow's own principal (SASL user), used "
        "with its password below; `tapeflow init` grants it the trading flow's ACLs.")
    trading_password: SecretStr | None = Field(
        None, description="Password of the trading flow's principal; unset: the trading flow "
        "connects as TAPEFLOW_KAFKA_SASL_USERNAME.")
    topic_prefix: str = Field("", description="Prepended to every topic name (isolation of "
                              "environments and tests).")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of the topics `tapeflow "
                            "init` creates.")
    source_batch_size: int = Field(1000, ge=1, le=100_000, description="Messages the market "
                                   "flow's Kafka source reads per poll of a partition, one batch "
                                   "(the trading flow's: TAPEFLOW_TRADING_SOURCE_BATCH_SIZE).")

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not TOPIC_PREFIX_PATTERN.match(value):
            raise ValueError(f"{value!r} may hold only letters, digits, '.', '_' and '-'")
        return value

    def credentials(self, role: KafkaRole | None = None) -> tuple[str | None, SecretStr | None]:
        """(SASL user, password) of `role`'s clients: the role's own principal when its
        password is set, else the settings' SASL user (None: the generic clients)."""
        if role is not None:
            password = self.market_password if role == "market" else self.trading_password
            if password is not None:
                return (self.market_username if role == "market" else self.trading_username,
                        password)
        return self.sasl_username, self.sasl_password

    def client_config(self, role: KafkaRole | None = None) -> dict[str, Any]:
        """librdkafka settings of every producer, consumer and admin client; `role`: a
        component with a principal of its own (`credentials`)."""
        username, password = self.credentials(role)
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": username,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        if password is not None:
            conf["sasl.password"] = password.get_secret_value()
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
    timeout_s: float = Field(
        10.0, gt=0, description="How long one registry request may take; one that gets no "
        "answer is retried like a store write, until `TAPEFLOW_SINK_RETRY_DEADLINE_S` "
        "(docs/bad-input.md).")


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
        batch_age_s: float = Field(
            0.1, gt=0, description="The trading flow's Postgres writer (on a thread of its "
            "own) writes once its oldest buffered state is this old: often, so a checkpoint "
            "waits only for a small remainder (docs/postgres-sink.md).")

        @field_validator("schema")
        @classmethod
        def _plainidentifier(cls, value: str) -> str:
            return identifier(value)


class MarketSettings(Group):
    """Tuning of the market core (docs/market-core.md): its state bounds and clocks."""

    group: ClassVar[str] = "market"

    seq_window: int = Field(
        4096, ge=16, le=1_000_000,
        description="Sequence numbers remembered per (venue, symbol, kind): duplicates are "
        "recognised within it, and in unique mode an older number is rejected as seq_too_old "
        "(bounds the filter's memory).")
    seq_mode: SeqMode = Field(
        SeqMode.PACKET, description="What a venue's sequence numbers mean: unique (one per "
        "message), packet (shared by the messages of a packet; a duplicate must also repeat the "
        "content) or none; packet is safe for both kinds of venue (docs/market-core.md).")
    venue_seq_modes: Annotated[dict[str, SeqMode], NoDecode] = Field(
        default_factory=dict, description="Per-venue sequence modes, VENUE=MODE,... "
        "(XCME=packet,XNAS=unique); other venues use TAPEFLOW_MARKET_SEQ_MODE.")
    condition_tables: Path | None = Field(
        None, description="A JSON file of trade-condition tables per venue ({\"XCME\": "
        "{\"codes\": {\"0\": \"regular\"}, \"unknown\": \"volume_only\"}}, \"*\" "
        "for the default); unset: the CTA/UTP table (docs/market-core.md).")
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

    @field_validator("venue_seq_modes", mode="before")
    @classmethod
    def _venue_modes(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [p.strip() for p in value.split(",") if p.strip()]
            if any("=" not in p for p in pairs):
                raise ValueError("write VENUE=MODE pairs separated by commas")
            value = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in pairs}
        return value

    @field_validator("condition_tables")
    @classmethod
    def _tables(cls, value: Path | None) -> Path | None:
        if value is not None:
            condition_rules(value)  # refused at start, in one line, not at the first trade
        return value

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
            filter=FilterConfig(
                seq_window=self.seq_window, seq_mode=self.seq_mode,
                venue_seq_modes=self.venue_seq_modes,
                conditions=(DEFAULT_CONDITION_RULES if self.condition_tables is None
                            else condition_rules(self.condition_tables))),
            candles=CandleConfig(allowed_lateness_us=us(self.allowed_lateness_s),
                                 retention_us=us(self.late_horizon_s),
                                 idle_timeout_us=us(self.idle_timeout_s)),
            mark_interval_us=us(self.mark_interval_s),
            merge_max_wait_us=(DEFAULT_MARKET_CONFIG.merge_max_wait_us if wait_s is None
                               else us(wait_s)),
            quiet_us=us(self.quiet_s),
        )


def condition_rules(path: Path) -> ConditionRules:
    """Condition tables from a JSON file: {venue or "*": {"codes": {code: effect}, "unknown":
    effect, "extends_default": bool}}; effects are regular, volume_only, no_effect. A venue's
    table starts from the CTA/UTP codes when `extends_default` is true (the default)."""
    try:
        data = json.loads(path.read_text())
        tables = {}
        for venue, spec in data.items():
            codes = dict(DEFAULT_CODES) if spec.get("extends_default", True) else {}
            codes.update({code: EFFECT_NAMES[name] for code, name in spec.get("codes", {}).items()})
            tables[venue] = ConditionTable(codes, EFFECT_NAMES[spec.get("unknown", "regular")])
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ValueError(f"condition tables {path}: {type(exc).__name__}: {exc}") from None
    default = tables.pop("*", DEFAULT_CONDITION_RULES.default)
    return ConditionRules(default, tables)


class TradingSettings(Group):
    """Tuning of the trading core (docs/trading-core.md)."""

    group: ClassVar[str] = "trading"

    order_terminal_ttl_s: float = Field(
        86400.0, gt=0, description="Event time a filled/cancelled order is kept (to recognise "
        "late duplicates) before it is forgotten.")
    order_max_terminal: int = Field(
        10_000, ge=1, description="At most this many finished orders kept per account.")
    initial_cash: Decimal = Field(
        Decimal(1_000_000), description="Cash of an account the flow has not seen before (0 "
        "when opening balances come as deposits on oms.cash).")
    currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="Currency of a new account that has no row "
        "in the Postgres table account_currencies (ISO 4217).")
    pnl_interval_s: float = Field(
        60.0, gt=0, description="Event-time width of a pnl_snapshots bucket.")
    limits_refresh_s: float = Field(
        30.0, gt=0, description="Wall time between reloads of risk limits and sessions from "
        "Postgres.")
    timer_s: float = Field(
        5.0, gt=0, description="Wall time between runs of the time-driven risk rules "
        "(stale marks, turnover expiry) and provisional P&L snapshots.")
    source_batch_size: int = Field(
        100, ge=1, le=100_000, description="Messages the trading flow's Kafka source reads per "
        "poll of a partition: small, because a batch's alerts leave together when its last "
        "report is applied (docs/flows.md, alert latency).")

    def core_config(self) -> ShardConfig:
        """The trading core's configuration (a shard of accounts)."""
        return ShardConfig(
            initial_cash=to_units(self.initial_cash),
            snapshot_interval_us=us(self.pnl_interval_s),
            currency=self.currency,
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
    metrics_host: str = Field(
        "127.0.0.1", description="Address the /metrics endpoint binds to (0.0.0.0: every "
        "interface, e.g. in a container whose port is published).")
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
    """Who may see which alerts (docs/alerts.md, docs/security.md)."""

    group: ClassVar[str] = "access"

    alerts_allowed_accounts: Annotated[frozenset[str] | None, NoDecode] = Field(
        None,
        description="Accounts whose alerts `tapeflow alerts` may deliver (comma list); unset: "
        "all. A convenience of the subscription, not enforcement (the broker's ACLs on the "
        "desk topics are); alerts without an account are withheld from a restricted "
        "subscriber (docs/alerts.md).")
    desks: Annotated[dict[str, frozenset[str]] | None, NoDecode] = Field(
        None,
        description="The desk of each account: `desk-a=ACC001,ACC002;desk-b=ACC003`. Alerts "
        "about a desk's accounts are also published to its topic risk.alerts.desk.DESK, "
        "which only that desk's subscribers may read (docs/security.md); unset or an account "
        "of no desk: risk.alerts only.")
    subscribers: Annotated[dict[str, frozenset[str]] | None, NoDecode] = Field(
        None,
        description="Subscriber principals and the desks each may read: "
        "`risk-a=desk-a;ops=*` (`*`: risk.alerts and every desk); `tapeflow init` grants "
        "them read on those topics and on their own consumer groups (`PRINCIPAL.*`).")

    viewers_file: Path | None = Field(
        None, description="JSON file of the live view's viewers (name -> password hash and "
        "the desks it reads, as a subscriber); unset: one local viewer who sees everything, "
        "on localhost (docs/live-view.md).")

    @field_validator("alerts_allowed_accounts", mode="before")
    @classmethod
    def _account_list(cls, value: object) -> object:
        # The environment gives "A,B"; an empty list would silently allow nothing, so it is
        # refused rather than read as "unset".
        return name_list(value, "account") if isinstance(value, str) else value

    @field_validator("desks", "subscribers", mode="before")
    @classmethod
    def _mapping(cls, value: object) -> object:
        # An empty value is "none" here (no desk topics), as a compose file passes it when
        # its variable is unset; unlike a restriction, "none" is not a guess.
        if isinstance(value, str):
            return name_mapping(value) if value.strip() else None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AccessSettings:
        desks = self.desks or {}
        seen: dict[str, str] = {}
        for desk, accounts in desks.items():
            identifier(desk, dash=True)
            for account in accounts:
                if account in seen:
                    raise ValueError(f"account {account} is in two desks ({seen[account]} "
                                     f"and {desk}); its alerts have one desk")
                seen[account] = desk
        for principal, allowed in (self.subscribers or {}).items():
            identifier(principal, dash=True)
            unknown = sorted(d for d in allowed if d != "*" and d not in desks)
            if unknown:
                raise ValueError(f"subscriber {principal}: no desk {', '.join(unknown)} in "
                                 "TAPEFLOW_ACCESS_DESKS")
        return self

    def desk_of(self) -> dict[str, str]:
        """Account -> its desk."""
        return {account: desk for desk, accounts in (self.desks or {}).items()
                for account in accounts}
