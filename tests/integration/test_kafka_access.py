"""Who may read which alerts is enforced by the broker: the session's authenticated test broker
(SASL/SCRAM, KRaft StandardAuthorizer), the ACLs `tapeflow init` grants, real clients.

Setup: two desks (desk-a: ACC-A; desk-b: ACC-B; ACC-C in no desk), two subscriber principals
(risk-a reads desk-a, risk-b reads desk-b), `tapeflow init` (topics with the desk topics, ACLs),
then the trading flow, as its own principal, over invalid execution reports of the three
accounts (each raises an `invalid_execution` alert, FIX 4.4: a fill for an order never
acknowledged is not applied).

What it proves:
- the trading flow wrote every alert to risk.alerts and each desk account's alert to exactly
  its desk topic (ACC-C's only to risk.alerts); a replay of the same reports adds nothing to
  any topic, and writes a desk copy that was missing (ACC-C, given a desk in between);
- risk-a reads desk-a's alerts, and the broker refuses it desk-b's topic and risk.alerts:
  a plain consumer with risk-a's credentials and no client-side filter gets
  TOPIC_AUTHORIZATION_FAILED, and `tapeflow alerts` says so in one line naming the ACL;
- risk-b can neither join risk-a's consumer group nor commit (reset) a position in it, nor
  even list it; risk-a's committed position is what risk-a left;
- a client without credentials, or with a wrong password, gets nothing: the broker drops the
  one and refuses the other's authentication; the CLI says so in one line;
- a flow whose principal lacks one ACL (the market flow's WRITE on md.marks, the trading
  flow's WRITE on a desk topic) does not start: one line naming the missing ACL, from the
  CLI with exit code 2; granted again, the flow runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from bytewax.testing import run_main
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from jobs.alerts import AlertFilter, StartAt, subscribe
from jobs.init import run_init
from jobs.local.kafka_broker import LocalKafka
from schemas.catalogue import TOPIC_ALERTS, TOPIC_EXECUTIONS, TOPIC_MARKS, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import read_all
from tapeflow.cli import app
from tapeflow.runtime.run import RunOptions, build
from tapeflow.services.kafka import AccessDeniedError, grant_acls, revoke_acls
from tapeflow.services.kafka_access import Grant
from tapeflow.settings import Settings
from tests.support.kafka_env import kafka_env
from tests.support.locations import REPO
from tests.support.trading_builders import OrderSim, u

DESKS = "desk-a=ACC-A;desk-b=ACC-B"
SUBSCRIBERS = "risk-a=desk-a;risk-b=desk-b"
ACCOUNTS = ("ACC-A", "ACC-B", "ACC-C")


@pytest.fixture(scope="module")
def deployment(kafka_broker: LocalKafka | None, kafka_auth: dict[str, Any], postgres_dsn: str,
               clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """init with desks and subscribers, invalid reports of the three accounts, the trading
    flow over them; the subscribers' settings and the alerts each topic holds. Once for the
    module: every test leaves the ACLs as it found them."""
    if kafka_broker is None:
        pytest.skip("needs the test broker (its admin credentials create the subscribers)")
    tag = uuid.uuid4().hex[:8]
    settings = Settings(home=tmp_path_factory.mktemp("home"), **kafka_auth,
                        kafka_bootstrap=kafka_broker.bootstrap, kafka_partitions=3,
                        kafka_topic_prefix=f"acl{tag}.", access_desks=DESKS,
                        access_subscribers=SUBSCRIBERS, postgres_dsn=postgres_dsn,
                        postgres_schema=f"tf_acl_{tag}", clickhouse_dsn=clickhouse_url,
                        clickhouse_database=f"tf_acl_{tag}")
    assert settings.postgres.dsn is not None
    run_init(settings, settings.postgres.dsn.get_secret_value())
    codec = Codec(LocalCatalogue.load())
    writer = KafkaWriter(settings.kafka_config())
    for account in ACCOUNTS:  # a fill for an order never acknowledged: an invalid report
        report = OrderSim(f"ghost-{account}", qty=u(3), account_id=account).fill(u(1), u(99))
        writer.send(settings.topic(TOPIC_EXECUTIONS), codec.encode(report), key=account)
    writer.flush()
    run_main(build(settings, RunOptions(flow="trading", batch=True, recovery=False)))

    def alerts(topic: str) -> list[tuple[str, str | None]]:
        return sorted((a.alert_id, a.account_id) for a in (
            codec.decode(m.value(), expect="RiskAlert")
            for m in read_all(settings.kafka_config(), topic)))

    subscribers = {}
    for name in ("risk-a", "risk-b"):
        password = kafka_broker.add_user(name)
        subscribers[name] = settings.with_overrides(kafka_sasl_username=name,
                                                    kafka_sasl_password=password)
    return {"settings": settings, "subscribers": subscribers, "codec": codec,
            "main": alerts(settings.topic(TOPIC_ALERTS)),
            "desk-a": alerts(settings.desk_topic("desk-a")),
            "desk-b": alerts(settings.desk_topic("desk-b"))}


def _refusal(conf: dict[str, Any], topic: str) -> int | None:
    """The error code a plain consumer gets reading every partition of `topic` (None: it
    read to the end without one): what the broker does, whatever any client filters."""
    group = f"{conf['sasl.username']}.probe-{uuid.uuid4().hex}"  # a group it may use
    consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        found = consumer.list_topics(topic, timeout=10).topics[topic]
        if found.error is not None:
            return int(found.error.code())
        consumer.assign([TopicPartition(topic, p, 0) for p in found.partitions])
        at_end: set[int] = set()
        for _ in range(20):
            for msg in consumer.consume(100, timeout=0.5):
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                elif err is not None:
                    return int(err.code())
            if len(at_end) == len(found.partitions):
                return None
        raise TimeoutError(f"{topic} was read neither to its end nor refused")
    finally:
        consumer.close()


def test_desk_topics_hold_exactly_their_desks_alerts(deployment: dict[str, Any]) -> None:
    main = deployment["main"]
    assert sorted(account for _, account in main) == sorted(ACCOUNTS)
    assert deployment["desk-a"] == [a for a in main if a[1] == "ACC-A"]
    assert deployment["desk-b"] == [a for a in main if a[1] == "ACC-B"]


def test_a_replay_sends_nothing_twice_and_writes_a_missing_desk_copy(
        deployment: dict[str, Any]) -> None:
    """The same reports again, now with ACC-C in a new desk: as after a crash between the
    write to risk.alerts and the desk copy, each topic is deduplicated on its own."""
    settings: Settings = deployment["settings"]
    again = settings.with_overrides(access_desks=f"{DESKS};desk-c=ACC-C")
    assert again.postgres.dsn is not None
    run_init(again, again.postgres.dsn.get_secret_value())  # desk-c's topic
    run_main(build(again, RunOptions(flow="trading", batch=True, recovery=False)))
    codec = deployment["codec"]

    def alerts(topic: str) -> list[tuple[str, str | None]]:
        return sorted((a.alert_id, a.account_id) for a in (
            codec.decode(m.value(), expect="RiskAlert")
            for m in read_all(settings.kafka_config(), topic)))

    for name in ("desk-a", "desk-b"):
        assert alerts(settings.desk_topic(name)) == deployment[name]
    assert alerts(settings.topic(TOPIC_ALERTS)) == deployment["main"]
    assert alerts(settings.desk_topic("desk-c")) == [a for a in deployment["main"]
                                                     if a[1] == "ACC-C"]


def test_a_desk_subscriber_reads_its_desk_and_the_broker_refuses_it_the_rest(
        deployment: dict[str, Any]) -> None:
    settings, risk_a = deployment["settings"], deployment["subscribers"]["risk-a"]
    with subscribe(risk_a, AlertFilter(), desks=["desk-a"], start=StartAt("beginning")) as got:
        assert sorted((a.alert_id, a.account_id) for a in got) == deployment["desk-a"]

    conf = risk_a.kafka_config()
    for topic in (settings.desk_topic("desk-b"), settings.topic(TOPIC_ALERTS)):
        assert _refusal(conf, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED, topic
    assert _refusal(conf, settings.desk_topic("desk-a")) is None  # the probe itself works

    with pytest.raises(AccessDeniedError) as refused, subscribe(
            risk_a, AlertFilter(), desks=["desk-b"], start=StartAt("beginning")) as other:
        list(other)
    desk_b = settings.desk_topic("desk-b")
    assert str(refused.value).startswith(
        f"Kafka refuses READ on topic {desk_b} to User:risk-a: missing ACL (ALLOW User:risk-a "
        f"READ on topic {desk_b})")

    env = {**kafka_env(risk_a), "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix}
    done = CliRunner().invoke(app, ["alerts", "--from-beginning"], env=env)
    assert done.exit_code == 2
    assert done.stderr.startswith(f"tapeflow: error: Kafka refuses READ on topic "
                                  f"{settings.topic(TOPIC_ALERTS)} to User:risk-a")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_subscriber_cannot_join_move_or_list_another_principals_group(
        deployment: dict[str, Any]) -> None:
    settings = deployment["settings"]
    risk_a, risk_b = deployment["subscribers"]["risk-a"], deployment["subscribers"]["risk-b"]
    with subscribe(risk_a, AlertFilter(), desks=["desk-a"], group="desk-watch",
                   start=StartAt("beginning")) as got:
        assert len(list(got)) == len(deployment["desk-a"])
        group = got.group
    assert group == "risk-a.desk-watch"  # named under its principal
    desk_a, desk_b = settings.desk_topic("desk-a"), settings.desk_topic("desk-b")
    admin_view = Consumer({**settings.kafka_config(), "group.id": group})
    parts = [TopicPartition(desk_a, p) for p in range(settings.kafka.partitions)]
    before = [tp.offset for tp in admin_view.committed(parts, timeout=10)]
    assert sum(before) == len(deployment["desk-a"])

    # risk-b joins risk-a's group (on its own desk's topic, which it may read): refused.
    joiner = Consumer({**risk_b.kafka_config(), "group.id": group,
                       "auto.offset.reset": "earliest"})
    joiner.subscribe([desk_b])
    codes: set[int] = set()
    for _ in range(20):
        codes |= {m.error().code() for m in joiner.consume(10, timeout=0.5)
                  if m.error() is not None}
        if codes:
            break
    joiner.close()
    assert codes == {KafkaError.GROUP_AUTHORIZATION_FAILED}
    # ... resets its position to the beginning, or deletes the group: refused.
    admin_b = AdminClient(risk_b.kafka_config())
    reset = ConsumerGroupTopicPartitions(group, [TopicPartition(desk_a, p, 0) for p in range(3)])
    for future in (admin_b.alter_consumer_group_offsets([reset], request_timeout=10)[group],
                   admin_b.delete_consumer_groups([group], request_timeout=10)[group]):
        with pytest.raises(KafkaException) as refused:
            future.result(10)
        assert refused.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert [tp.offset for tp in admin_view.committed(parts, timeout=10)] == before
    admin_view.close()

    def listed(conf: dict[str, Any]) -> set[str]:
        admin = AdminClient(conf)
        found = admin.list_consumer_groups(request_timeout=10).result(10)
        return {g.group_id for g in found.valid}

    assert group in listed(settings.kafka_config())
    assert group not in listed(risk_b.kafka_config())


def test_a_client_without_valid_credentials_is_refused(deployment: dict[str, Any]) -> None:
    settings = deployment["settings"]
    anonymous = {"bootstrap.servers": settings.kafka.bootstrap, "socket.timeout.ms": 2000}
    with pytest.raises(KafkaException):
        AdminClient(anonymous).list_topics(timeout=3)
    failures: list[int] = []
    wrong = {**deployment["subscribers"]["risk-a"].kafka_config(), "sasl.password": "wrong",
             "error_cb": lambda err: failures.append(err.code())}
    refused = AdminClient(wrong)
    with pytest.raises(KafkaException):
        refused.list_topics(timeout=3)
    refused.poll(0)  # serves the error callback
    assert KafkaError._AUTHENTICATION in failures

    home = {"TAPEFLOW_HOME": str(settings.home / "anonymous")}
    for extra, why in (({}, "no Kafka broker answers"),
                       ({"TAPEFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                         "TAPEFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                         "TAPEFLOW_KAFKA_SASL_USERNAME": "risk-a",
                         "TAPEFLOW_KAFKA_SASL_PASSWORD": "wrong"}, "refused the credentials")):
        env = {"TAPEFLOW_KAFKA_BOOTSTRAP": settings.kafka.bootstrap, **home, **extra}
        done = CliRunner().invoke(app, ["alerts", "--desk", "desk-a"], env=env)
        assert done.exit_code == 2, done.output
        assert done.stderr.startswith("tapeflow: error: ") and why in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_flow_missing_an_acl_says_which_and_runs_once_granted(
        deployment: dict[str, Any], tmp_path: Path) -> None:
    settings: Settings = deployment["settings"]
    market = settings.kafka.market_username
    marks = Grant(market, "topic", settings.topic(TOPIC_MARKS), "literal", "write")
    assert revoke_acls(settings.kafka_config(), [marks]) == 1
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")},
           **kafka_env(settings), "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
           "TAPEFLOW_HOME": str(tmp_path / "home"), "TAPEFLOW_METRICS_PORT": "0",
           "TAPEFLOW_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'chdb'}"}
    done = subprocess.run([sys.executable, "-m", "tapeflow.cli", "run", "market", "--batch",
                           "--no-recovery"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"tapeflow: error: Kafka refuses WRITE on topic {marks.name} to User:{market}: "
        f"missing ACL ({marks.describe()}); `tapeflow init` grants the flows' ACLs "
        "(docs/security.md)"]

    trading = settings.kafka.trading_username
    desks = Grant(trading, "topic", settings.topic("risk.alerts.desk."), "prefixed", "write")
    assert revoke_acls(settings.kafka_config(), [desks]) == 1
    options = RunOptions(flow="trading", batch=True, recovery=False)
    with pytest.raises(AccessDeniedError) as refused:
        build(settings, options)
    assert str(refused.value).startswith(
        f"Kafka refuses WRITE on topic {settings.desk_topic('desk-a')} to User:{trading}: "
        f"missing ACL (ALLOW User:{trading} WRITE on topics starting with "
        f"{settings.topic('risk.alerts.desk.')})")

    assert grant_acls(settings.kafka_config(), [marks, desks]) == 2
    run_main(build(settings, options))  # granted again: it starts, and runs to the end
