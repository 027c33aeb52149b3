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
fields below (`tapeflow.settings.table`), so a knob cannot exist without its documentation.
"""


from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tapeflow.settings.base import (
    BATCH_MERGE_WAIT_S,
    DEFAULT_HOME,
    ENV_PREFIX,
    LOCAL_KAFKA_PORT,
    RENAMED,
    Group,
    is_secret,
    mapping_text,
)
from tapeflow.settings.groups import (
    KAFKA_ROLES,
    AccessSettings,
    ClickHouseSettings,
    KafkaRole,
    KafkaSettings,
    MarketSettings,
    PostgresSettings,
    RuntimeSettings,
    SchemaRegistrySettings,
    TradingSettings,
)

__all__ = [
    "BATCH_MERGE_WAIT_S",
    "DEFAULT_HOME",
    "DESK_ALERTS_PREFIX",
    "ENV_PREFIX",
    "GROUPS",
    "KAFKA_ROLES",
    "LOCAL_KAFKA_PORT",
    "RENAMED",
    "AccessSettings",
    "ClickHouseSettings",
    "KafkaRole",
    "KafkaSettings",
    "MarketSettings",
    "PostgresSettings",
    "RuntimeSettings",
    "SchemaRegistrySettings",
    "Settings",
    "TradingSettings",
    "locate",
]

DESK_ALERTS_PREFIX = "risk.alerts.desk."
"""Desk alert topics are named this plus the desk (under the deployment's topic prefix)."""

GROUPS: dict[str, type[Group]] = {
    "kafka": KafkaSettings,
    "schema_registry": SchemaRegistrySettings,
    "clickhouse": ClickHouseSettings,
    "postgres": PostgresSettings,
    "market": MarketSettings,
    "trading": TradingSettings,
    "runtime": RuntimeSettings,
    "access": AccessSettings,
}


def _field_name(cls: type[Group], knob: str) -> str | None:
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

    def desk_topic(self, desk: str) -> str:
        """The full name of a desk's alert topic (`TAPEFLOW_ACCESS_DESKS`)."""
        return self.topic(f"{DESK_ALERTS_PREFIX}{desk}")

    def kafka_config(self, role: KafkaRole | None = None) -> dict[str, Any]:
        """librdkafka settings of a client; `role`: a component with a principal of its own
        (`KafkaSettings.credentials`)."""
        return self.kafka.client_config(role)

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
        needs to build the same settings, with `secret_environment` (which a caller hands
        over as `*_FILE` files: `tapeflow.runtime.cluster.child_environment`)."""
        env = {f"{ENV_PREFIX}HOME": str(self.home)}
        for attr, cls in GROUPS.items():
            group = getattr(self, attr)
            word = f"{cls.group.upper()}_" if cls.group else ""
            for name, field in cls.model_fields.items():
                value = getattr(group, name)
                if value is None or is_secret(field):
                    continue
                if isinstance(value, dict):
                    value = mapping_text(value)
                elif isinstance(value, frozenset):
                    value = ",".join(sorted(value))
                elif isinstance(value, dict):
                    value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
                elif isinstance(value, bool):
                    value = "true" if value else "false"
                env[f"{ENV_PREFIX}{word}{name.upper()}"] = str(value)
        return env

    def secret_environment(self) -> dict[str, str]:
        """Every secret knob that is set, unwrapped, by its `TAPEFLOW_*` variable: for a child
        process only, never for a log (the caller passes them as files, not as values)."""
        env: dict[str, str] = {}
        for attr, cls in GROUPS.items():
            group = getattr(self, attr)
            word = f"{cls.group.upper()}_" if cls.group else ""
            for name, field in cls.model_fields.items():
                value = getattr(group, name)
                if value is not None and is_secret(field):
                    env[f"{ENV_PREFIX}{word}{name.upper()}"] = value.get_secret_value()
        return env
