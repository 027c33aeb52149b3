"""Secret settings: where they come from (environment, `*_FILE`, a secrets directory) and that
they do not show in reprs, dumps or store error messages (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import SettingsError

from tapeflow.errors import StoreUnavailableError
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.dsn import redact as _redact
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings, locate

PW = "s3cr3t-Pa55"
SECRET_FIELDS = ("kafka_sasl_password", "kafka_ssl_key_password", "schema_registry_basic_auth",
                 "clickhouse_dsn", "postgres_dsn")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_FIELDS:
        monkeypatch.delenv(f"TAPEFLOW_{name.upper()}", raising=False)
        monkeypatch.delenv(f"TAPEFLOW_{name.upper()}_FILE", raising=False)
    monkeypatch.delenv("TAPEFLOW_SECRETS_DIR", raising=False)


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_every_secret_reads_from_a_file_and_stays_hidden(
        field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret"
    path.write_text(f"{PW}-{field}\n")  # `echo pw > file` leaves a newline: dropped
    monkeypatch.setenv(f"TAPEFLOW_{field.upper()}_FILE", str(path))
    settings = Settings()
    group, name = locate(field)
    assert getattr(getattr(settings, group), name).get_secret_value() == f"{PW}-{field}"
    for text in (repr(settings), str(settings), settings.model_dump_json(),
                 str(settings.model_dump())):
        assert PW not in text


def test_a_crlf_file_and_a_file_without_newline(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").write_text(f"{PW}\r\n", newline="")
    monkeypatch.setenv("TAPEFLOW_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "a"))
    assert Settings().kafka.sasl_password.get_secret_value() == PW  # type: ignore[union-attr]
    (tmp_path / "a").write_text(PW + "\n\n")  # only one newline is the file's ending
    assert Settings().kafka.sasl_password.get_secret_value() == PW + "\n"  # type: ignore[union-attr]


def test_variable_and_file_together_are_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").write_text(PW)
    monkeypatch.setenv("TAPEFLOW_POSTGRES_DSN_FILE", str(tmp_path / "a"))
    monkeypatch.setenv("TAPEFLOW_POSTGRES_DSN", "postgresql://other")
    with pytest.raises(SettingsError, match="TAPEFLOW_POSTGRES_DSN and "
                       "TAPEFLOW_POSTGRES_DSN_FILE are both set"):
        Settings()


def test_a_missing_file_is_an_error_not_a_silent_default(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("TAPEFLOW_POSTGRES_DSN_FILE", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        Settings()


def test_only_secret_settings_read_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").write_text("elsewhere:9092")
    monkeypatch.setenv("TAPEFLOW_KAFKA_BOOTSTRAP_FILE", str(tmp_path / "a"))
    assert Settings().kafka.bootstrap != "elsewhere:9092"


def test_flags_win_over_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").write_text(PW)
    monkeypatch.setenv("TAPEFLOW_POSTGRES_DSN_FILE", str(tmp_path / "a"))
    settings = Settings().with_overrides(postgres_dsn="postgresql://flag")
    assert settings.postgres.dsn.get_secret_value() == "postgresql://flag"  # type: ignore[union-attr]


def test_a_secrets_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "TAPEFLOW_KAFKA_SASL_PASSWORD").write_text(PW)
    (tmp_path / "tapeflow_postgres_dsn").write_text("postgresql://u:pw@h/db")
    monkeypatch.setenv("TAPEFLOW_SECRETS_DIR", str(tmp_path))
    settings = Settings()
    assert settings.kafka.sasl_password.get_secret_value() == PW  # type: ignore[union-attr]
    assert settings.postgres.dsn.get_secret_value() == "postgresql://u:pw@h/db"  # type: ignore[union-attr]
    assert settings.kafka_config()["sasl.password"] == PW
    monkeypatch.setenv("TAPEFLOW_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="is not a directory"):
        Settings()


REDACT = [
    ("postgresql://u:s3cr3t@h:5432/db?sslmode=require", "postgresql://u:***@h:5432/db?sslmode=require"),
    ("postgresql://u@h/db?password=s3cr3t&application_name=x",
     "postgresql://u@h/db?password=***&application_name=x"),
    ("postgresql:///db?host=/run/pg&user=u&PASSWORD=s3cr3t",
     "postgresql:///db?host=/run/pg&user=u&PASSWORD=***"),
    ("host=h user=u password=s3cr3t dbname=d", "host=h user=u password=*** dbname=d"),
    ("host=h password = 's3 cr\\'3t' port=5432", "host=h password = *** port=5432"),
    ("http://default:s3cr3t@ch:8123/?password=s3cr3t", "http://default:***@ch:8123/?password=***"),
    ("chdb:///var/lib/tapeflow", "chdb:///var/lib/tapeflow"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
]


@pytest.mark.parametrize(("dsn", "shown"), REDACT)
def test_dsns_in_messages_are_redacted(dsn: str, shown: str) -> None:
    assert _redact(dsn) == shown


def test_store_errors_do_not_carry_the_password() -> None:
    with pytest.raises(StoreUnavailableError) as pg:
        connect_postgres(f"host=127.0.0.1 port=1 user=u password={PW} dbname=d", "s",
                         connect_timeout=1)
    assert PW not in str(pg.value) and "password=***" in str(pg.value)
    with pytest.raises(StoreUnavailableError) as ch:
        open_clickhouse(f"http://u:{PW}@127.0.0.1:1/")
    assert PW not in str(ch.value)


def test_kafka_security_settings_reach_librdkafka(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key_pw").write_text(PW + "\n")
    monkeypatch.setenv("TAPEFLOW_KAFKA_SSL_KEY_PASSWORD_FILE", str(tmp_path / "key_pw"))
    settings = Settings(kafka_bootstrap="b:9093", kafka_security_protocol="SASL_SSL",
                        kafka_sasl_mechanism="SCRAM-SHA-512",
                        kafka_sasl_username="tf", kafka_sasl_password="sasl-pw",
                        kafka_ssl_ca_location="/ca.pem", kafka_ssl_certificate_location="/c.pem",
                        kafka_ssl_key_location="/k.pem")
    assert settings.kafka_config() == {
        "bootstrap.servers": "b:9093", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "tf", "sasl.password": "sasl-pw",
        "ssl.ca.location": "/ca.pem", "ssl.certificate.location": "/c.pem",
        "ssl.key.location": "/k.pem", "ssl.key.password": PW,
    }
    assert "sasl-pw" not in repr(settings) and PW not in repr(settings)
