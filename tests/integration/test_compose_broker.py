"""The compose stack's broker configuration, run: scripts/compose/kafka-start.sh with the secrets
scripts/compose-secrets generates, outside a container (no Docker engine here) with the local
broker's own jars standing in for the image's `/opt/kafka/bin` scripts.

What it proves (the stack's Kafka security, docs/security.md "The compose stack"): the script's
config boots; the admin, both flows' principals and the schema registry's sign in with their
secrets over SASL/SCRAM on the internal listener; the external listener speaks SASL over TLS
with the certificate the generator signed, so a client trusting the generated CA signs in, and
a client that does not trust it, or that does not use TLS, is refused; a client without
credentials is refused on the internal listener; the flows' principals are not super users.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from jobs.local.kafka_broker import LOG4J_CONFIG, ensure_jars
from tapeflow.services.kafka import broker_answers
from tapeflow.settings import Settings
from tests.support.locations import REPO

STAND_INS = {"kafka-storage.sh": "kafka.tools.StorageTool", "kafka-server-start.sh": "kafka.Kafka"}


def _free_port_triple() -> int:
    """A port p with p+1 and p+2 free too (internal, controller, external listeners)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        try:
            for offset in (1, 2):
                with socket.socket() as other:
                    other.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port triple")


@pytest.fixture(scope="module")
def compose_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("compose-kafka")
    secrets = root / "secrets"
    subprocess.run([str(REPO / "scripts" / "compose-secrets"), str(secrets)], check=True,
                   capture_output=True, timeout=60)
    jars = ensure_jars(Settings().runtime.cache_dir)
    (root / "bin").mkdir()
    for name, main in STAND_INS.items():  # what the image's scripts do, with the local jars
        script = root / "bin" / name
        script.write_text("#!/usr/bin/env bash\nexec java -Xmx512m "
                          f"-Dlog4j2.configurationFile={LOG4J_CONFIG} -cp '{jars}/*' {main} "
                          '"$@"\n')
        script.chmod(0o755)
    port = _free_port_triple()
    env = {**os.environ, "KAFKA_HOME": str(root), "TAPEFLOW_SECRETS": str(secrets),
           "KAFKA_DATA": str(root / "data"), "KAFKA_CONFIG_DIR": str(root / "config"),
           "KAFKA_HOST": "127.0.0.1", "KAFKA_BIND": "127.0.0.1", "KAFKA_PORT": str(port)}
    log = (root / "broker.log").open("wb")
    proc = subprocess.Popen([str(REPO / "scripts" / "compose" / "kafka-start.sh")], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    broker = {"secrets": secrets, "internal": f"127.0.0.1:{port}",
              "external": f"localhost:{port + 2}", "config": root / "config"}
    try:
        admin = _conf(broker, "tapeflow-admin", "kafka_admin_password")
        deadline = time.monotonic() + 90
        while not broker_answers(admin, 1.0):
            assert proc.poll() is None, (root / "broker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (root / "broker.log").read_text()[-3000:]
            time.sleep(0.5)
        yield broker
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _conf(broker: dict[str, Any], user: str, secret: str, *,
          external: bool = False, ca: bool = True) -> dict[str, Any]:
    conf = {"bootstrap.servers": broker["external" if external else "internal"],
            "security.protocol": "SASL_SSL" if external else "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": (broker["secrets"] / secret).read_text().strip()}
    if external and ca:
        conf["ssl.ca.location"] = str(broker["secrets"] / "kafka_ca.pem")
    return conf


def test_every_principal_signs_in_with_its_secret(compose_broker: dict[str, Any]) -> None:
    for user, secret in (("tapeflow-admin", "kafka_admin_password"),
                         ("tapeflow-market", "kafka_market_password"),
                         ("tapeflow-trading", "kafka_trading_password"),
                         ("schema-registry", "kafka_schema_registry_password")):
        assert broker_answers(_conf(compose_broker, user, secret), 5.0), user
    assert not broker_answers({"bootstrap.servers": compose_broker["internal"]}, 2.0)
    assert not broker_answers({**_conf(compose_broker, "tapeflow-admin", "kafka_admin_password"),
                               "sasl.password": "wrong"}, 2.0)
    for name in ("server.properties", "admin.properties"):  # they hold passwords
        assert ((compose_broker["config"] / name).stat().st_mode & 0o777) == 0o600


def test_beyond_the_host_only_tls_with_the_generated_ca(compose_broker: dict[str, Any]) -> None:
    admin = ("tapeflow-admin", "kafka_admin_password")
    assert broker_answers(_conf(compose_broker, *admin, external=True), 5.0)
    assert not broker_answers(_conf(compose_broker, *admin, external=True, ca=False), 2.0)
    plain = {**_conf(compose_broker, *admin), "bootstrap.servers": compose_broker["external"]}
    assert not broker_answers(plain, 2.0)  # SASL without TLS on the external listener


def test_the_authorizer_is_on_and_the_flows_are_not_super_users(
        compose_broker: dict[str, Any]) -> None:
    market = AdminClient(_conf(compose_broker, "tapeflow-market", "kafka_market_password"))
    created = market.create_topics([NewTopic("not-granted", 1, 1)])["not-granted"]
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        created.result(10)
    admin = AdminClient(_conf(compose_broker, "tapeflow-admin", "kafka_admin_password"))
    admin.create_topics([NewTopic("granted-to-admin", 1, 1)])["granted-to-admin"].result(10)
