"""The access table (`tapeflow.services.kafka_access`) and the settings it is drawn from: each
principal gets what its component does and nothing else, the table in docs/security.md is the
one the code grants, the desk and subscriber settings refuse what would be ambiguous, and the
local broker's credentials apply only where nothing else is configured. No broker here: the
broker enforcing the table is tests/integration/test_kafka_access.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.alerts import subscriber_group
from jobs.local.kafka_credentials import (
    ADMIN_USER,
    ROLE_USERS,
    credentials_dir,
    with_local_credentials,
    write_private,
)
from tapeflow.services.kafka_access import (
    SECURITY_DOC,
    Grant,
    all_grants,
    component_grants,
    example_grants,
    needed,
    replace_in,
)
from tapeflow.settings import Settings

DESKS = "desk-a=ACC001,ACC002;desk-b=ACC003"


def _settings(**knobs: object) -> Settings:
    return Settings(_env_file=None, kafka_topic_prefix="p.", **knobs)


def _rows(grants: list[Grant]) -> set[tuple[str, str, str, str, str]]:
    return {(g.principal, g.resource, g.name, g.pattern, g.operation) for g in grants}


def test_the_security_doc_table_is_the_granted_one() -> None:
    text = SECURITY_DOC.read_text()
    assert replace_in(text, example_grants()) == text, \
        "run: uv run python -m tapeflow.services.kafka_access"


def test_the_market_flow_reads_the_tape_and_writes_its_outputs_only() -> None:
    m = "tapeflow-market"
    assert _rows(component_grants(_settings(), "market")) == {
        (m, "topic", "p.md.trades", "literal", "read"),
        (m, "topic", "p.md.quotes", "literal", "read"),
        (m, "topic", "p.md.marks", "literal", "write"),
        (m, "topic", "p.md.candles", "literal", "write"),
        (m, "topic", "p.tapeflow.dlq", "literal", "write"),
        (m, "topic", "p.risk.alerts", "literal", "read"),
        (m, "topic", "p.risk.alerts", "literal", "write"),
        (m, "group", "p.tapeflow-market", "prefixed", "read"),
        (m, "group", "p.tapeflow-all", "prefixed", "read"),
    }


def test_the_trading_flow_writes_alerts_and_the_desk_copies() -> None:
    t = "tapeflow-trading"
    rows = _rows(component_grants(_settings(), "trading"))
    assert rows == {
        (t, "topic", "p.oms.executions", "literal", "read"),
        (t, "topic", "p.oms.cash", "literal", "read"),
        (t, "topic", "p.md.marks", "literal", "read"),
        (t, "topic", "p.tapeflow.dlq", "literal", "write"),
        (t, "topic", "p.risk.alerts", "literal", "read"),
        (t, "topic", "p.risk.alerts", "literal", "write"),
        (t, "topic", "p.risk.alerts.desk.", "prefixed", "read"),
        (t, "topic", "p.risk.alerts.desk.", "prefixed", "write"),
        (t, "group", "p.tapeflow-trading", "prefixed", "read"),
        (t, "group", "p.tapeflow-all", "prefixed", "read"),
    }
    assert not any(r[2].endswith(("md.trades", "md.quotes")) for r in rows)  # not the tape


def test_a_subscriber_reads_its_desks_and_its_own_groups_only() -> None:
    settings = _settings(access_desks=DESKS, access_subscribers="risk-a=desk-a;ops=*")
    subscribers = {r for r in _rows(all_grants(settings)) if r[0] in ("risk-a", "ops")}
    assert subscribers == {
        ("risk-a", "topic", "p.risk.alerts.desk.desk-a", "literal", "read"),
        ("risk-a", "topic", "p.md.candles", "literal", "read"),  # market data: every desk's
        ("risk-a", "group", "risk-a.", "prefixed", "read"),
        ("ops", "topic", "p.risk.alerts", "prefixed", "read"),
        ("ops", "topic", "p.md.candles", "literal", "read"),
        ("ops", "group", "ops.", "prefixed", "read"),
    }
    # Nothing of a subscriber's is writable, and no grant reaches another's group prefix.
    assert all(r[4] == "read" for r in subscribers)


def test_a_flow_checks_each_desk_topic_and_its_groups() -> None:
    settings = _settings(access_desks=DESKS)
    checked = {(name, g.operation) for name, g in needed(settings, "trading", "p.tapeflow-all")}
    assert {("p.risk.alerts.desk.desk-a", "write"), ("p.risk.alerts.desk.desk-b", "write"),
            ("p.risk.alerts.desk.desk-a", "read"), ("p.tapeflow-all", "read"),
            ("p.tapeflow-trading", "read"), ("p.oms.executions", "read")} <= checked
    # The grant named for a desk topic is the prefixed one that covers it.
    covering = dict((name, g) for name, g in needed(settings, "trading"))
    assert covering["p.risk.alerts.desk.desk-b"].pattern == "prefixed"


@pytest.mark.parametrize(("knobs", "message"), [
    ({"access_desks": "a=ACC1;b=ACC1"}, "ACC1 is in two desks"),
    ({"access_desks": "a=ACC1", "access_subscribers": "x=b"}, "no desk b"),
    ({"access_desks": "a.b=ACC1"}, "may hold only letters"),
    ({"access_desks": "a=ACC1", "access_subscribers": "x.y=a"}, "may hold only letters"),
    ({"access_desks": "a"}, "is not NAME=VALUE"),
    ({"access_desks": "a="}, "give at least one value"),
    ({"access_desks": ";"}, "give at least one NAME=VALUE"),
    ({"access_desks": "a=ACC1", "access_subscribers": "x="}, "give at least one value"),
])
def test_ambiguous_desks_and_subscribers_are_refused(knobs: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(**knobs)


def test_desks_survive_the_environment_of_a_child_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(access_desks=DESKS, access_subscribers="risk-a=desk-a;ops=*")
    assert settings.access.desk_of() == {"ACC001": "desk-a", "ACC002": "desk-a",
                                         "ACC003": "desk-b"}
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    child = Settings(_env_file=None)
    assert child.access == settings.access


def test_each_flow_connects_as_its_own_principal_when_it_has_a_password() -> None:
    shared = _settings(kafka_sasl_username="ops", kafka_sasl_password="ops-pw")
    assert shared.kafka_config("market")["sasl.username"] == "ops"  # no own password: shared
    own = _settings(kafka_sasl_username="ops", kafka_sasl_password="ops-pw",
                    kafka_market_password="m-pw", kafka_trading_username="t",
                    kafka_trading_password="t-pw")
    assert (own.kafka_config("market")["sasl.username"],
            own.kafka_config("market")["sasl.password"]) == ("tapeflow-market", "m-pw")
    assert (own.kafka_config("trading")["sasl.username"],
            own.kafka_config("trading")["sasl.password"]) == ("t", "t-pw")
    assert own.kafka_config()["sasl.username"] == "ops"
    assert "m-pw" not in repr(own) and "t-pw" not in repr(own)


def test_a_subscribers_groups_are_named_under_its_principal() -> None:
    assert subscriber_group(_settings(kafka_sasl_username="risk-a"), "watch") == "risk-a.watch"
    assert subscriber_group(_settings(kafka_sasl_username="risk-a"),
                            "risk-a.watch") == "risk-a.watch"
    assert subscriber_group(_settings(), "watch") == "watch"  # no SASL user: as given


def _local_home(tmp_path: Path) -> Path:
    for user in (ADMIN_USER, *ROLE_USERS.values()):
        write_private(credentials_dir(tmp_path) / user, f"{user}-pw")
    return tmp_path


@pytest.mark.parametrize(("knobs", "applies"), [
    ({}, True),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": ADMIN_USER}, True),
    ({"kafka_security_protocol": "PLAINTEXT"}, False),  # a developer asked for no auth
    ({"kafka_sasl_username": "risk-a", "kafka_sasl_password": "x"}, False),  # explicit wins
    ({"kafka_market_password": "x"}, False),
    ({"kafka_bootstrap": "kafka.example:9092"}, False),  # not the local broker
])
def test_the_local_brokers_credentials_apply_only_where_nothing_else_is_set(
        tmp_path: Path, knobs: dict[str, str], applies: bool) -> None:
    settings = Settings(_env_file=None, home=_local_home(tmp_path), **knobs)
    found = with_local_credentials(settings)
    assert (found is not settings) == applies
    if applies:
        conf = found.kafka_config("trading")
        assert (conf["security.protocol"], conf["sasl.mechanism"]) == (
            "SASL_PLAINTEXT", "SCRAM-SHA-512")
        assert (conf["sasl.username"], conf["sasl.password"]) == (
            "tapeflow-trading", "tapeflow-trading-pw")
        assert found.kafka_config()["sasl.username"] == ADMIN_USER


def test_no_local_credentials_nothing_applies(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path)
    assert with_local_credentials(settings) is settings
