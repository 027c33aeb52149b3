"""The machinery every settings group shares: where values come from, and the renamed
variables of earlier versions (the groups themselves are in `groups`)."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar, get_args

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "TAPEFLOW_"
BATCH_MERGE_WAIT_S = 3600.0
"""`--batch` runs: how far trades and quotes may run apart before being judged alone."""
DEFAULT_HOME = Path(".tapeflow")
LOCAL_KAFKA_PORT = 9092

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
TOPIC_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9._-]{0,100}$")

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


def is_secret(field: FieldInfo) -> bool:
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
            if not path or not is_secret(field):
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


class Group(BaseSettings):
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



def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def identifier(value: str, *, dash: bool = False) -> str:
    """`value` if it is a plain identifier (letters, digits, `_`; and `-` with `dash`: a
    desk or a principal, which become parts of topic and group names)."""
    if dash:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} may hold only letters, digits, '_' and '-'")
    elif not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain identifier (letters, digits, _)")
    return value


def name_list(text: str, what: str) -> list[str]:
    """"A,B" as a list; an empty list is refused (it would silently allow nothing)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"give at least one {what}, or leave it unset for all")
    return names


def name_mapping(text: str) -> dict[str, frozenset[str]]:
    """"a=X,Y;b=Z" as {"a": {"X", "Y"}, "b": {"Z"}} (the form `Settings.environment`
    writes back)."""
    out: dict[str, frozenset[str]] = {}
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        name, sep, values = entry.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{entry!r} is not NAME=VALUE,VALUE")
        if name.strip() in out:
            raise ValueError(f"{name.strip()} is given twice")
        out[name.strip()] = frozenset(name_list(values, f"value for {name.strip()}"))
    if not out:
        raise ValueError("give at least one NAME=VALUE, or leave it unset")
    return out


def mapping_text(value: dict[str, frozenset[str]]) -> str:
    """The inverse of `name_mapping`."""
    return ";".join(f"{name}={','.join(sorted(values))}" for name, values in sorted(value.items()))


