"""The one settings object: built once at the entry point, frozen, passed down.

Precedence: command-line flags, then `TAPEFLOW_*` environment variables (or a `.env` file), then
the defaults below, which run everything locally (a broker on 127.0.0.1, chDB and embedded
Postgres under `./.tapeflow/`). Secrets are `SecretStr`: they print as `**********` in logs,
reprs and tracebacks, and are unwrapped only where a client is built.

Secrets can also come from files, so they need not sit in the environment (docs/security.md):
`TAPEFLOW_<NAME>_FILE=/path` for one secret setting (the Docker and Kubernetes convention), or
`TAPEFLOW_SECRETS_DIR=/dir` holding one file per setting named like its variable
(`/run/secrets/TAPEFLOW_POSTGRES_DSN`), read by pydantic-settings' own secrets source.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

DEFAULT_HOME = Path(".tapeflow")
LOCAL_KAFKA_PORT = 9092

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,100}$")


ENV_PREFIX = "TAPEFLOW_"


def _is_secret(field: FieldInfo) -> bool:
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)


class SecretFilesSource(PydanticBaseSettingsSource):
    """`TAPEFLOW_<NAME>_FILE`: a secret setting's value read from that file (only `SecretStr`
    settings; one trailing newline dropped, as `echo pw > file` leaves one). Setting both the
    variable and its `_FILE` twin is refused: which one wins would be a guess."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            variable = f"{ENV_PREFIX}{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if not path or not _is_secret(field):
                continue
            if os.environ.get(variable):
                raise SettingsError(f"{variable} and {variable}_FILE are both set: keep one")
            text = Path(path).read_text()
            values[name] = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
        return values


class Settings(BaseSettings):
    """Everything a command needs to find its services. Immutable once built."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    home: Path = Field(DEFAULT_HOME, description="Local state: embedded stores, broker data.")
    kafka_bootstrap: str = Field(f"127.0.0.1:{LOCAL_KAFKA_PORT}")
    kafka_security_protocol: str | None = Field(None, description="librdkafka security.protocol")
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = Field(
        None, description="librdkafka ssl.certificate.location (client certificate, mTLS)")
    kafka_ssl_key_location: str | None = Field(None, description="librdkafka ssl.key.location")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="librdkafka ssl.key.password, for an encrypted client key")
    schema_registry_url: str | None = Field(None, description="Unset: the local catalogue.")
    schema_registry_basic_auth: SecretStr | None = Field(None, description="user:password")
    schema_catalogue: Path | None = Field(
        None, description="catalogue.json of the local catalogue, when there is no registry "
        "(unset: the repository's schemas/catalogue.json); docs/schema-evolution.md.")
    clickhouse_dsn: SecretStr | None = Field(
        None, description="chdb:///path (embedded, default) or http(s)://user:pw@host:8123"
    )
    clickhouse_database: str = "tapeflow"
    postgres_dsn: SecretStr | None = Field(None, description="Unset: embedded Postgres.")
    postgres_schema: str = "tapeflow"
    topic_prefix: str = Field("", description="Prepended to every topic name (isolation).")
    partitions: int = Field(4, ge=1, le=1024, description="Partitions for topics init creates.")
    seq_window: int = Field(
        4096, ge=16, le=1_000_000,
        description="Sequence numbers remembered per (venue, symbol, kind) to detect "
        "duplicates; older ones are rejected as seq_too_old (bounds the filter's memory).")
    allowed_lateness_s: float = Field(
        5.0, ge=0, description="Candles: event time a bucket stays open past its end.")
    late_horizon_s: float = Field(
        3600.0, ge=0, description="Candles: how far behind the watermark a late trade still "
        "corrects its candle; later ones are rejected too_late (bounds retained buckets).")
    order_terminal_ttl_s: float = Field(
        86400.0, gt=0, description="Orders: event time a filled/cancelled order is kept "
        "(to recognise late duplicates) before it is forgotten.")
    order_max_terminal: int = Field(
        10_000, ge=1, description="Orders: at most this many finished orders kept per account.")
    metrics_port: int | None = Field(
        9464, ge=0, le=65535,
        description="Prometheus /metrics port of `tapeflow run` (0: off); a local cluster's "
        "process i serves port + i (docs/metrics.md).",
    )
    sink_retry_deadline_s: float = Field(
        600.0, gt=0,
        description="How long a flow's sink keeps retrying a store or broker that does not "
        "answer (the flow waits meanwhile) before the flow stops so a restart replays "
        "(docs/faults.md).",
    )
    alerts_allowed_accounts: Annotated[frozenset[str] | None, NoDecode] = Field(
        None,
        description="Accounts whose alerts `tapeflow alerts` may deliver (comma list); unset: "
        "all. Enforced by the subscription whatever its filters say; alerts without an "
        "account are withheld from a restricted subscriber (docs/alerts.md).",
    )

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init), environment, `*_FILE` files, `.env`, then `TAPEFLOW_SECRETS_DIR`."""
        sources = [init_settings, env_settings, SecretFilesSource(settings_cls), dotenv_settings]
        secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
        if secrets_dir:
            if not Path(secrets_dir).is_dir():
                raise SettingsError(f"{ENV_PREFIX}SECRETS_DIR={secrets_dir} is not a directory")
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir,
                                                 case_sensitive=False))
        return tuple(sources)

    @field_validator("clickhouse_database", "postgres_schema")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a plain identifier (letters, digits, _)")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not _TOPIC_PREFIX.match(value):
            raise ValueError(f"{value!r} may hold only letters, digits, '.', '_' and '-'")
        return value

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

    def topic(self, name: str) -> str:
        """The full name of one of DESIGN.md's topics under this deployment's prefix."""
        return f"{self.topic_prefix}{name}"

    def clickhouse_url(self) -> str:
        if self.clickhouse_dsn is not None:
            return self.clickhouse_dsn.get_secret_value()
        return f"chdb://{(self.home / 'clickhouse').resolve()}"

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        conf: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap}
        optional = {
            "security.protocol": self.kafka_security_protocol,
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        if self.kafka_sasl_password is not None:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_key_password is not None:
            conf["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        return conf

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with flag values applied (flags win over the environment)."""
        given = {k: v for k, v in changes.items() if v is not None}
        if not given:
            return self
        merged = {**{name: getattr(self, name) for name in type(self).model_fields}, **given}
        return type(self)(**merged)
