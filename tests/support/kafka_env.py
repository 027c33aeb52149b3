"""The test broker's credentials for a child process (`tapeflow ...` in a subprocess, or a
CliRunner environment): the Kafka variables of a test's settings, passwords as `*_FILE` paths
to the test broker's own 0600 files (never on a command line), or inline in the environment
for another broker (an external one, a test's own)."""

from __future__ import annotations

from jobs.local.kafka_credentials import credentials_dir
from tapeflow.settings import Settings
from tests.support.locations import TEST_KAFKA_HOME


def kafka_env(settings: Settings) -> dict[str, str]:
    """`TAPEFLOW_KAFKA_*` variables that reach the broker of `settings` with its principals."""
    kafka = settings.kafka
    env = {"TAPEFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap}
    plain = {"SECURITY_PROTOCOL": kafka.security_protocol, "SASL_MECHANISM": kafka.sasl_mechanism,
             "SASL_USERNAME": kafka.sasl_username, "MARKET_USERNAME": kafka.market_username,
             "TRADING_USERNAME": kafka.trading_username}
    env.update({f"TAPEFLOW_KAFKA_{k}": v for k, v in plain.items() if v is not None})
    local = credentials_dir(TEST_KAFKA_HOME)
    for name, user, password in (("SASL", kafka.sasl_username, kafka.sasl_password),
                                 ("MARKET", kafka.market_username, kafka.market_password),
                                 ("TRADING", kafka.trading_username, kafka.trading_password)):
        if password is None:
            continue
        secret = password.get_secret_value()
        if user and (local / user).is_file() and (local / user).read_text().strip() == secret:
            env[f"TAPEFLOW_KAFKA_{name}_PASSWORD_FILE"] = str(local / user)
        else:
            env[f"TAPEFLOW_KAFKA_{name}_PASSWORD"] = secret
    return env


def child_env(settings: Settings) -> dict[str, str]:
    """`TAPEFLOW_*` variables for a command run on the services of `settings`: the broker with
    its principals (`kafka_env`), the topic prefix, both stores and the home. Shared by the
    tests that run `tapeflow ...` in a subprocess or a CliRunner."""
    assert settings.postgres.dsn is not None
    return {**kafka_env(settings),
            "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "TAPEFLOW_CLICKHOUSE_DSN": settings.clickhouse_url(),
            "TAPEFLOW_CLICKHOUSE_DATABASE": settings.clickhouse.database,
            "TAPEFLOW_POSTGRES_DSN": settings.postgres.dsn.get_secret_value(),
            "TAPEFLOW_POSTGRES_SCHEMA": settings.postgres.schema,
            "TAPEFLOW_HOME": str(settings.home)}
