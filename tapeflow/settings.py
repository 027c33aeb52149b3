"""The one settings object: built once at the entry point, frozen, passed down as a tree.

`Settings` holds `home` and one group per concern: `kafka`, `schema_registry`, `clickhouse`,
`postgres` (where the services are), `market` and `trading` (tuning of the two cores),
`runtime` (how a process runs: logs, metrics, recovery, retries) and `access` (who may see
what). Every knob has exactly one name, used everywhere:

- in the environment: `TAPEFLOW_<GROUP>_<KNOB>` (`TAPEFLOW_KAFKA_BOOTSTRAP`,
  `TAPEFLOW_MARKET_SEQ_WINDOW`); the runtime group has no group word (`TAPEFLOW_LOG_LEVEL`);
- as a flat keyword of `Settings(...)` and `with_overrides(...)`: the variable without the
  `TAPEFLOW_` prefix, lower case (`kafka_bootstrap=`, `market_seq_window=`);
- in code: `settings.kafka.bootstrap`, `settings.market.seq_window`.

Precedence: command-line flags, then the environment (or a `.env` file), then `*_FILE` files
and `TAPEFLOW_SECRETS_DIR` for secrets, then the defaults below, which run everything locally
(a broker on 127.0.0.1, chDB and embedded Postgres under `./.tapeflow/`). Secrets are
`SecretStr`: they print as `**********` in logs, reprs and tracebacks, and are unwrapped only
where a client is built (docs/security.md). The README's settings table is generated from the
fields below (`tapeflow.settings_table`), so a knob cannot exist without its documentation.
"""

from __future__ import annotations

import os
import re
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from tapeflow.core.fixedpoint import to_units
from tapeflow.core.market.candles import CandleConfig
from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG, MarketConfig
from tapeflow.core.trading.order_book import OrderRetention
from tapeflow.core.trading.shard_step import ShardConfig

ENV_PREFIX = "TAPEFLOW_"
BATCH_MERGE_WAIT_S = 3600.0
"""`--batch` runs: how far trades and quotes may run apart before being judged alone."""
DEFAULT_HOME = Path(".tapeflow")
LOCAL_KAFKA_PORT = 9092

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,100}$")

RENAMED = {
    "TAPEFLOW_TOPIC_PREFIX": "TAPEFLOW_KAFKA_TOPIC_PREFIX",
    "TAPEFLOW_PARTITIONS": "TAPEFLOW_KAFKA_PARTITIONS",
    "TAPEFLOW_SCHEMA_CATALOGUE": "TAPEFLOW_SCHEMA_REGISTRY_CATALOGUE",
    "TAPEFLOW_SEQ_WINDOW": "TAPEFLOW_MARKET_SEQ_WINDOW",
    "TAPEFLOW_ALLOWED_LATENESS_S": "TAPEFLOW_MARKET_ALLOWED_LATENESS_S",
    "TAPEFLOW_LATE_HORIZON_S": "TAPEFLOW_MARKET_LATE_HORIZON_S",
    "TAPEFLOW_ORDER_TERMINAL_TTL_S": "TAPEFLOW_TRADING_ORDER_TERMINAL_TTL_S",
    "TAPEFLOW_ORDER_MAX_TERMINAL": "TAPEFLOW_TRADING_ORDER_MAX_TERMINAL",
    "TAPEFLOW_ALERTS_ALLOWED_ACCOUNTS": "TAPEFLOW_ACCESS_ALERTS_ALLOWED_ACCOUNTS",
}
"""Variables of earlier versions, read under their new name (with a warning) when the new one
is unset, so a deployment keeps working while it renames them."""


def _is_secret(field: FieldInfo) -> bool:
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)


class _SecretFilesSource(PydanticBaseSettingsSource):
    """`TAPEFLOW_<NAME>_FILE`: a secret setting's value read from that file (only `SecretStr`
    settings; one trailing newline dropped, as `echo pw > file` leaves one). Setting both the
    variable and its `_FILE` twin is refused: which one wins would be a guess."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", ENV_PREFIX))
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            variable = f"{prefix}{name}".upper()
            path = os.environ.get(f"{variable}_FILE")
            if not path or not _is_secret(field):
                continue
            if os.environ.get(variable):
                raise SettingsError(f"{variable} and {variable}_FILE are both set: keep one")
            text = Path(path).read_text()
            values[name] = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
        return values


class _RenamedSource(PydanticBaseSettingsSource):
    """Values of `RENAMED` variables of earlier versions, under their new names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", ENV_PREFIX)).upper()
        values: dict[str, Any] = {}
        for old, new in RENAMED.items():
            name = new.removeprefix(prefix).lower() if new.startswith(prefix) else None
            if name not in self.settings_cls.model_fields or old not in os.environ:
                continue
            if new in os.environ:
                continue
            warnings.warn(f"{old} is now called {new}; rename it", FutureWarning, stacklevel=1)
            values[name] = os.environ[old]
        return values


class _Group(BaseSettings):
    """A group of settings read from `TAPEFLOW_<GROUP>_*` variables; frozen once built."""

    group: ClassVar[str] = ""
    """The group word of its variables ('' for the runtime group)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True,
                                      hide_input_in_errors=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        word = f"{cls.group.upper()}_" if cls.group else ""
        cls.model_config = {**cls.model_config, "env_prefix": f"{ENV_PREFIX}{word}"}

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init), environment, `*_FILE` files, `.env`, `TAPEFLOW_SECRETS_DIR`, then the
        renamed variables of earlier versions."""
        sources = [init_settings, env_settings, _SecretFilesSource(settings_cls),
                   dotenv_settings]
        secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
        if secrets_dir:
            if not Path(secrets_dir).is_dir():
                raise SettingsError(f"{ENV_PREFIX}SECRETS_DIR={secrets_dir} is not a directory")
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir,
                                                 case_sensitive=False))
        sources.append(_RenamedSource(settings_cls))
        return tuple(sources)


class KafkaSettings(_Group):
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
        if not _TOPIC_PREFIX.match(value):
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


class SchemaRegistrySettings(_Group):
    """Where Avro schema ids come from: a Confluent-compatible registry, or the catalogue."""

    group: ClassVar[str] = "schema_registry"

    url: str | None = Field(None, description="Registry URL; unset: the local catalogue.")
    basic_auth: SecretStr | None = Field(None, description="Registry credentials, user:password.")
    catalogue: Path | None = Field(
        None, description="catalogue.json of the local catalogue when there is no registry "
        "(unset: the repository's schemas/catalogue.json); docs/schema-evolution.md.")


class ClickHouseSettings(_Group):
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
    def _plain_identifier(cls, value: str) -> str:
        return _identifier(value)


with warnings.catch_warnings():
    # `schema` is the knob's name (TAPEFLOW_POSTGRES_SCHEMA); it shadows pydantic's deprecated
    # `BaseModel.schema()`, which nothing here uses.
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class PostgresSettings(_Group):
        """The operational store."""

        group: ClassVar[str] = "postgres"

        dsn: SecretStr | None = Field(None, description="Any libpq DSN; unset: embedded "
                                      "Postgres under HOME.")
        schema: str = Field(  # type: ignore[assignment]
            "tapeflow", description="Schema of Tapeflow's tables.")

        @field_validator("schema")
        @classmethod
        def _plain_identifier(cls, value: str) -> str:
            return _identifier(value)


class MarketSettings(_Group):
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
            candles=CandleConfig(allowed_lateness_us=_us(self.allowed_lateness_s),
                                 retention_us=_us(self.late_horizon_s),
                                 idle_timeout_us=_us(self.idle_timeout_s)),
            mark_interval_us=_us(self.mark_interval_s),
            merge_max_wait_us=(DEFAULT_MARKET_CONFIG.merge_max_wait_us if wait_s is None
                               else _us(wait_s)),
            quiet_us=_us(self.quiet_s),
        )


class TradingSettings(_Group):
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
            snapshot_interval_us=_us(self.pnl_interval_s),
            retention=OrderRetention(max_terminal=self.order_max_terminal,
                                     terminal_ttl_us=_us(self.order_terminal_ttl_s)))


class RuntimeSettings(_Group):
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


class AccessSettings(_Group):
    """What a subscriber may see (docs/alerts.md, docs/security.md)."""

    group: ClassVar[str] = "access"

    alerts_allowed_accounts: Annotated[frozenset[str] | None, NoDecode] = Field(
        None,
        description="Accounts whose alerts `tapeflow alerts` may deliver (comma list); unset: "
        "all. A convenience of the subscription, not enforcement; alerts without an account are "
        "withheld from a restricted subscriber (docs/alerts.md).")

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


GROUPS: dict[str, type[_Group]] = {
    "kafka": KafkaSettings,
    "schema_registry": SchemaRegistrySettings,
    "clickhouse": ClickHouseSettings,
    "postgres": PostgresSettings,
    "market": MarketSettings,
    "trading": TradingSettings,
    "runtime": RuntimeSettings,
    "access": AccessSettings,
}


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain identifier (letters, digits, _)")
    return value


def _field_name(cls: type[_Group], knob: str) -> str | None:
    """The field of `cls` a knob (its variable's name after the group word) names."""
    for name, field in cls.model_fields.items():
        if knob in (name, field.alias):
            return name
    return None


def locate(flat: str) -> tuple[str, str]:
    """(group attribute, field) of a flat knob name: 'kafka_bootstrap' -> ('kafka',
    'bootstrap'), 'metrics_port' -> ('runtime', 'metrics_port'). Raises KeyError."""
    for attr, cls in GROUPS.items():
        if cls.group and flat.startswith(f"{cls.group}_"):
            field = _field_name(cls, flat.removeprefix(f"{cls.group}_"))
            if field is not None:
                return attr, field
    field = _field_name(RuntimeSettings, flat)
    if field is not None:
        return "runtime", field
    raise KeyError(f"no setting {flat!r}")


def _grouped(knobs: dict[str, Any]) -> dict[str, Any]:
    flat = dict(knobs)
    env_file = flat.pop("_env_file", ".env")
    home = flat.pop("home", None)
    if home is None:
        home = os.environ.get(f"{ENV_PREFIX}HOME") or DEFAULT_HOME
    given: dict[str, dict[str, Any]] = {attr: {} for attr in GROUPS}
    whole: dict[str, Any] = {}
    for key, value in flat.items():
        if key in GROUPS:
            whole[key] = value
            continue
        attr, field = locate(key)
        given[attr][field] = value
    out: dict[str, Any] = {"home": home}
    for attr, group in GROUPS.items():
        value = whole.get(attr)
        if isinstance(value, group) and not given[attr]:
            out[attr] = value
            continue
        base = ({name: getattr(value, name) for name in group.model_fields}
                if isinstance(value, group) else dict(value or {}))
        out[attr] = group(_env_file=env_file, **{**base, **given[attr]})
    return out


class Settings(BaseModel):
    """Everything a command needs: where its services are and how to run. Immutable."""

    model_config = ConfigDict(frozen=True)

    home: Path = Field(DEFAULT_HOME, description="Local state: broker data, embedded stores, "
                       "recovery stores.")
    kafka: KafkaSettings
    schema_registry: SchemaRegistrySettings
    clickhouse: ClickHouseSettings
    postgres: PostgresSettings
    market: MarketSettings
    trading: TradingSettings
    runtime: RuntimeSettings
    access: AccessSettings

    def __init__(self, **knobs: Any) -> None:
        """Flat knobs (`kafka_bootstrap=...`) or whole groups (`kafka=KafkaSettings(...)`);
        every group is built through its own constructor, so what the keywords do not give
        comes from the environment (`_env_file=None` skips `.env`, as for pydantic-settings).
        Built here rather than in a validator so that a settings error keeps its own type."""
        super().__init__(**_grouped(knobs))

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with flag values applied (flags win over the environment); None means "not
        given" and changes nothing. Keys are flat knob names (`kafka_bootstrap`)."""
        given = {k: v for k, v in changes.items() if v is not None}
        if not given:
            return self
        groups: dict[str, Any] = {attr: getattr(self, attr) for attr in GROUPS}
        per_group: dict[str, dict[str, Any]] = {}
        home = given.pop("home", self.home)
        for key, value in given.items():
            attr, field = locate(key)
            per_group.setdefault(attr, {})[field] = value
        for attr, fields in per_group.items():
            current = groups[attr]
            values = {name: getattr(current, name) for name in type(current).model_fields}
            groups[attr] = type(current)(**{**values, **fields})
        return Settings(home=home, **groups)

    def topic(self, name: str) -> str:
        """The full name of one of the design's topics under this deployment's prefix."""
        return f"{self.kafka.topic_prefix}{name}"

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        return self.kafka.client_config()

    def clickhouse_url(self) -> str:
        """The ClickHouse DSN, unwrapped: the configured one, or chDB under `home`."""
        if self.clickhouse.dsn is not None:
            return self.clickhouse.dsn.get_secret_value()
        return f"chdb://{(self.home / 'clickhouse').resolve()}"

    def postgres_url(self) -> str | None:
        """The Postgres DSN, unwrapped; None: the embedded server (not started yet)."""
        return None if self.postgres.dsn is None else self.postgres.dsn.get_secret_value()

    def environment(self) -> dict[str, str]:
        """Every knob that is not a secret as `TAPEFLOW_*` variables: what a child process
        needs to build the same settings (secrets it reads where this process read them, from
        the same variables, `*_FILE` files or secrets directory)."""
        env = {f"{ENV_PREFIX}HOME": str(self.home)}
        for attr, cls in GROUPS.items():
            group = getattr(self, attr)
            word = f"{cls.group.upper()}_" if cls.group else ""
            for name, field in cls.model_fields.items():
                value = getattr(group, name)
                if value is None or _is_secret(field):
                    continue
                if isinstance(value, frozenset):
                    value = ",".join(sorted(value))
                elif isinstance(value, bool):
                    value = "true" if value else "false"
                env[f"{ENV_PREFIX}{word}{name.upper()}"] = str(value)
        return env
