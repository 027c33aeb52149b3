"""A full run with configured secrets prints none of them, at DEBUG log level.

`tapeflow demo` in a subprocess (broker, Postgres, chDB, generator, both flows, summary) with:
- the Postgres DSN, password included, from a file (`TAPEFLOW_POSTGRES_DSN_FILE`); the test
  server trusts local connections, so it accepts any password and the run is real;
- the Kafka SASL passwords of the admin and of both flows' principals from a secrets directory
  (`TAPEFLOW_SECRETS_DIR`), over the test broker's SASL/SCRAM listener: the run authenticates
  with them (the broker refuses a client without them);
- the schema registry's basic auth from the environment (held, unused by the local catalogue).

What it proves: the run succeeded with the secrets it was given (the DSN from the file was the
one used: the demo wrote its orders to that server and started no embedded Postgres; the Kafka
passwords were the ones used: the broker lets no one in without them), and no password
appears in stdout, stderr, the files the run left under its home, the broker's log or the
Postgres server's log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jobs.local.kafka_broker import LocalKafka
from jobs.local.kafka_credentials import ADMIN_USER, ROLE_USERS
from tests.support.locations import REPO, TEST_HOME


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_demo_prints_no_configured_secret(postgres_dsn: str, kafka_broker: LocalKafka | None,
                                          kafka_bootstrap: str, tmp_path: Path) -> None:
    if kafka_broker is None:
        pytest.skip("needs the test broker's own credentials")
    tag = uuid.uuid4().hex[:8]
    secrets = {name: f"{name}-{uuid.uuid4().hex}" for name in ("pg", "registry")}
    dsn = make_conninfo(**{**conninfo_to_dict(postgres_dsn), "password": secrets["pg"]})
    (tmp_path / "pg_dsn").write_text(dsn + "\n")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for name, user in (("SASL", ADMIN_USER), *((r.upper(), u) for r, u in ROLE_USERS.items())):
        secrets[user] = kafka_broker.credentials.password(user)
        (secrets_dir / f"TAPEFLOW_KAFKA_{name}_PASSWORD").write_text(secrets[user])
    home = tmp_path / "home"
    schema = f"tf_sec_{tag}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")},
        "TAPEFLOW_HOME": str(home),
        "TAPEFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TAPEFLOW_KAFKA_TOPIC_PREFIX": f"t{tag}.",
        "TAPEFLOW_KAFKA_PARTITIONS": "2",
        "TAPEFLOW_POSTGRES_SCHEMA": schema,
        "TAPEFLOW_POSTGRES_DSN_FILE": str(tmp_path / "pg_dsn"),
        "TAPEFLOW_SECRETS_DIR": str(secrets_dir),
        "TAPEFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TAPEFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TAPEFLOW_KAFKA_SASL_USERNAME": ADMIN_USER,
        "TAPEFLOW_SCHEMA_REGISTRY_BASIC_AUTH": f"tapeflow:{secrets['registry']}",
        "TAPEFLOW_LOG_LEVEL": "DEBUG",
    }
    proc = subprocess.run([sys.executable, "-m", "tapeflow.cli", "demo", "--minutes", "0.2"],
                          cwd=REPO, env=env, capture_output=True, timeout=280, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert b"DEBUG" in proc.stderr  # the debug logs were on

    # The secrets were used: the DSN from the file is where the demo wrote its orders.
    assert not (home / "postgres").exists()
    with psycopg.connect(postgres_dsn) as conn:
        (orders,) = conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}.orders").format(
            psycopg.sql.Identifier(schema))).fetchone() or (0,)
    assert orders > 0

    logs = [*_files(home), kafka_broker.log_file, TEST_HOME / "postgres" / "log"]
    searched = [out] + [p.read_bytes() for p in logs if p.is_file()]
    assert len(searched) > 3
    for name, secret in secrets.items():
        leaks = [i for i, text in enumerate(searched) if secret.encode() in text]
        assert leaks == [], f"the {name} secret was printed"
