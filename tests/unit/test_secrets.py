"""Secret settings: where they come from (environment, `*_FILE`, a secrets directory) and that
they do not show in reprs, dumps or store error messages (docs/security.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import SettingsError

from tapeflow.errors import StoreUnavailableError, UserError
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.dsn import DsnError, scrub
from tapeflow.services.dsn import redact as _redact
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings, locate
from tests.support.locations import REPO

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
    ("postgresql://u:s3cr3t@h:5432/db?sslmode=require", "h:5432/db"),
    ("postgresql://u@h/db?password=s3cr3t&application_name=x", "h/db"),
    ("postgresql:///db?host=/run/pg&user=u&password=s3cr3t", "[/run/pg]/db"),
    ("host=h user=u password=s3cr3t dbname=d", "h/d"),
    ("host=h password = 's3 cr\\'3t' port=5432", "h:5432/"),
    ("http://default:s3cr3t@ch:8123/?password=s3cr3t", "http://ch:8123/"),
    ("chdb:///var/lib/tapeflow", "chdb:///var/lib/tapeflow"),
    ("postgresql://u@h/db", "h/db"),
    # A '#' in a password is valid for libpq; read as a URL, '#ter2@h/db' was a "fragment"
    # and the whole password was shown (issue 14).
    ("postgresql://u:hun#ter2@h:5432/db", "h:5432/db"),
    ("http://u:hun#t/er@2@ch:8123/tapeflow#x", "http://ch:8123/tapeflow"),
    # Not readable at all: nothing of it is shown.
    ("host=h password=hun ter2 dbname=d", "an unreadable DSN (not shown)"),
]


@pytest.mark.parametrize(("dsn", "shown"), REDACT)
def test_dsns_are_shown_as_host_port_and_database_only(dsn: str, shown: str) -> None:
    assert _redact(dsn) == shown
    for secret in ("s3cr3t", "s3 cr", "hun", "ter2", "er@2", "default", "u@"):
        assert secret not in shown


def test_store_errors_do_not_carry_the_password() -> None:
    with pytest.raises(StoreUnavailableError) as pg:
        connect_postgres(f"host=127.0.0.1 port=1 user=u password={PW} dbname=d", "s",
                         connect_timeout=1)
    assert PW not in str(pg.value) and "127.0.0.1:1/d" in str(pg.value)
    with pytest.raises(StoreUnavailableError) as ch:
        open_clickhouse(f"http://u:{PW}@127.0.0.1:1/")
    assert PW not in str(ch.value)


@pytest.mark.parametrize("dsn", ["host=127.0.0.1 port=1 user=u password=hun ter2 dbname=d",
                                 "host=127.0.0.1 password='hun ter2 dbname=d"])
def test_a_dsn_libpq_cannot_read_is_a_clean_error_without_the_password(dsn: str) -> None:
    """psycopg's own error quotes the text around the mistake (`missing "=" after "ter2"`)
    and was a traceback; now it is a user error (one line, exit 2) that quotes nothing."""
    with pytest.raises(DsnError) as err:
        connect_postgres(dsn, "s", connect_timeout=1)
    assert isinstance(err.value, UserError)
    message = str(err.value)
    assert "ter2" not in message and "hun" not in message and "\n" not in message
    assert "single-quoted (password='a b')" in message


def test_the_command_line_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TAPEFLOW_POSTGRES_DSN": "host=127.0.0.1 password=hun ter2 dbname=d",
           "TAPEFLOW_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "tapeflow.cli", "query", "positions"],
                          check=False, env=env, capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("tapeflow: error: the Postgres DSN (TAPEFLOW_POSTGRES_DSN) "
                                  "cannot be read"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "ter2" not in done.stderr + done.stdout


def test_the_store_lock_message_holds_no_credentials() -> None:
    command = "python job.py --target postgresql://u:hun#ter2@h/db password=pw2 chdb:///x"
    shown = scrub(command)
    assert "hun" not in shown and "ter2" not in shown and "pw2" not in shown
    assert shown == "python job.py --target postgresql://***@h/db password=*** chdb:///x"


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
