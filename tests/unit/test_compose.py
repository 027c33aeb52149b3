"""The compose stack's security rules, read from `docker compose config` (the file as Docker
reads it) and from the image's Dockerfile (docs/security.md, "The compose stack"):

- no password in the file or in an environment variable: every secret is a compose secret
  that scripts/compose-secrets generates, and Tapeflow reads it through a `*_FILE` setting;
- stores, registry and metrics are published on 127.0.0.1 only; the broker publishes only
  its TLS listener;
- each Tapeflow container runs as its component's principal, the flows with the stores'
  writer users, queries with the read-only ones, init with the owners;
- the image runs as an unprivileged user.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.locations import REPO


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    if shutil.which("docker") is None:
        pytest.skip("no docker client (scripts/check-compose builds what this needs)")
    done = subprocess.run(["docker", "compose", "--profile", "tools", "config", "--format",
                           "json"], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=60)
    if done.returncode != 0 and "is not a docker command" in done.stderr:
        pytest.skip("no docker compose plugin (scripts/check-compose builds it)")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose["services"][service].get("environment") or {}).items()}


def test_no_password_in_the_file_or_the_environment(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _env(compose, name).items():
            assert not key.endswith(("PASSWORD", "_DSN", "BASIC_AUTH")), (name, key)
            assert "@" not in value, (name, key)  # no credentials in an address
            if key.endswith("_FILE"):  # a secret this service is given
                assert value in {s["target"] for s in service.get("secrets", [])}, (name, key)


def test_every_secret_is_generated(compose: dict[str, Any], tmp_path: Path) -> None:
    subprocess.run([str(REPO / "scripts" / "compose-secrets"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    for name, secret in compose["secrets"].items():
        generated = tmp_path / Path(secret["file"]).name
        assert generated.is_file() and generated.stat().st_size > 0, name
    assert (tmp_path.stat().st_mode & 0o777) == 0o700


def test_only_the_brokers_tls_listener_is_published_beyond_the_host(
        compose: dict[str, Any]) -> None:
    published = {(name, str(p.get("host_ip", "")), int(p["target"]))
                 for name, service in compose["services"].items()
                 for p in service.get("ports", [])}
    beyond = {(name, target) for name, ip, target in published if ip != "127.0.0.1"}
    assert beyond == {("kafka", 9094)}
    start = (REPO / "scripts" / "compose" / "kafka-start.sh").read_text()
    assert "EXTERNAL:SASL_SSL" in start and "INTERNAL:SASL_PLAINTEXT" in start
    assert "StandardAuthorizer" in start and "allow.everyone.if.no.acl.found=false" in start


def test_each_container_runs_as_its_own_principal_and_store_user(
        compose: dict[str, Any]) -> None:
    expected = {
        "init": ("tapeflow-admin", "kafka_admin_password", "admin"),
        "market": ("tapeflow-market", "kafka_market_password", "writer"),
        "trading": ("tapeflow-trading", "kafka_trading_password", "writer"),
    }
    for service, (user, password, store_user) in expected.items():
        env = _env(compose, service)
        assert env["TAPEFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["TAPEFLOW_KAFKA_SASL_USERNAME"] == user
        assert env["TAPEFLOW_KAFKA_SASL_PASSWORD_FILE"] == f"/run/secrets/{password}"
        for store in ("CLICKHOUSE", "POSTGRES"):
            assert env[f"TAPEFLOW_{store}_DSN_FILE"] == \
                f"/run/secrets/{store.lower()}_{store_user}_dsn"
    query = _env(compose, "query")
    assert query["TAPEFLOW_POSTGRES_DSN_FILE"] == "/run/secrets/postgres_reader_dsn"
    assert query["TAPEFLOW_CLICKHOUSE_DSN_FILE"] == "/run/secrets/clickhouse_reader_dsn"
    assert "TAPEFLOW_KAFKA_SASL_USERNAME" not in query  # queries need no broker


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = [line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines()
             if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
