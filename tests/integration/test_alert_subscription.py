"""`tapeflow alerts` and `jobs.alerts.subscribe` against the real broker.

Alerts with varied accounts, symbols, rules, severities and publication times are produced to
`risk.alerts` (codec-encoded, keyed by account, Kafka timestamps set explicitly), plus one
undecodable frame. Each test compares what the subscription delivers with a plain list
comprehension over what was produced (the reference).

What it proves:
- each filter, and their combination, delivers exactly the matching alerts; the bad frame is
  skipped with one warning, never a crash;
- a restart with the same group delivers exactly the rest (no loss, no repeat); leaving on an
  exception redelivers only the alert that was being handled (at-least-once, as documented);
- `--start` delivers exactly the alerts published at/after the time, even a late-stamped one
  placed after newer records;
- a subscriber restricted by configuration to account A never gets B's alerts or alerts with
  no account, whatever it asks for;
- `--follow` waits for and delivers alerts produced after it started;
- the CLI prints valid JSON lines, the same alerts, and refuses --account outside the
  restriction with a one-line error.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from jobs.alerts import AlertFilter, StartAt, subscribe
from jobs.init import create_topics
from schemas.catalogue import TOPIC_ALERTS, LocalCatalogue
from schemas.codec import Codec
from tapeflow.cli import app
from tapeflow.core.models import RiskAlert, Severity
from tapeflow.settings import Settings
from tests.support.kafka_env import kafka_env

ACCOUNTS = ["ACC001", "ACC002", "ACC003", None]
SYMBOLS = ["AAPL", "MSFT", None]
RULES = ["fat_finger", "position_limit", "feed_gap"]
SEVERITIES = list(Severity)
N = 48
BEGINNING = StartAt("beginning")


def _alerts(base_ms: int) -> list[tuple[RiskAlert, int]]:
    """N distinct alerts with every combination of fields, each with its publication time
    (ms): one minute apart."""
    out = []
    for i in range(N):
        account = ACCOUNTS[i % 4]
        alert = RiskAlert(
            alert_id=f"al-{i:03d}", rule=RULES[i % 3], severity=SEVERITIES[(i // 3) % 3],
            account_id=account, symbol=SYMBOLS[(i // 2) % 3],
            ts_event=(base_ms + i * 60_000) * 1000,
            observed=i * 10**8 + 5, limit=None if i % 5 else 10**9, message=f"alert {i}",
            source_event_id=f"e{i}")
        out.append((alert, base_ms + i * 60_000))
    return out


def _produce(settings: Settings, codec: Codec, items: list[tuple[RiskAlert, int]],
             garbage: bool = False) -> None:
    producer = Producer(settings.kafka_config())
    topic = settings.topic(TOPIC_ALERTS)
    for alert, ts_ms in items:
        producer.produce(topic, codec.encode(alert), alert.account_id, timestamp=ts_ms)
    if garbage:
        producer.produce(topic, b"\x00\x00\x00\x00\x63not avro", "ACC001",
                         timestamp=items[-1][1])
    assert producer.flush(30) == 0


@pytest.fixture
def produced(settings: Settings) -> list[tuple[RiskAlert, int]]:
    create_topics(settings)
    base_ms = int(time.time() * 1000) - 2 * 3600_000  # two hours ago, one per minute
    items = _alerts(base_ms)
    _produce(settings, Codec(LocalCatalogue.load()), items, garbage=True)
    return items


def _ids(alerts: Any) -> list[str]:
    return [a.alert_id for a in alerts]


def _group() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


FILTERS = [
    AlertFilter(),
    AlertFilter.of(accounts=["ACC001"]),
    AlertFilter.of(accounts=["ACC001", "ACC003"]),
    AlertFilter.of(symbols=["MSFT"]),
    AlertFilter.of(rules=["position_limit", "feed_gap"]),
    AlertFilter.of(min_severity="warning"),
    AlertFilter.of(min_severity="critical"),
    AlertFilter.of(accounts=["ACC002"], symbols=["AAPL"], min_severity="warning"),
]


def _reference(items: list[tuple[RiskAlert, int]], f: AlertFilter) -> list[str]:
    rank = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
    return sorted(a.alert_id for a, _ in items
                  if (not f.accounts or a.account_id in f.accounts)
                  and (not f.symbols or a.symbol in f.symbols)
                  and (not f.rules or a.rule in f.rules)
                  and rank[a.severity] >= rank[f.min_severity])


def test_each_filter_delivers_exactly_its_alerts(settings: Settings,
                                                 produced: list[tuple[RiskAlert, int]]) -> None:
    for wanted in FILTERS:
        warnings: list[str] = []
        with subscribe(settings, wanted, group=_group(), start=BEGINNING,
                       warn=warnings.append) as sub:
            got = _ids(sub)
        want = _reference(produced, wanted)
        assert want, f"the data exercises {wanted}"
        assert sorted(got) == want, wanted
        assert len(got) == len(set(got))
        assert len(warnings) == 1 and "undecodable" in warnings[0]
        assert sub.skipped_undecodable == 1
    # Within a partition (one account) the order is the topic's.
    with subscribe(settings, AlertFilter.of(accounts=["ACC002"]), group=_group(),
                   start=BEGINNING, warn=lambda _: None) as sub:
        got = _ids(sub)
    assert got == [a.alert_id for a, _ in produced if a.account_id == "ACC002"]


def test_restart_resumes_without_loss_or_repeat(settings: Settings,
                                                produced: list[tuple[RiskAlert, int]]) -> None:
    group, wanted = _group(), AlertFilter.of(min_severity="warning")
    want = _reference(produced, wanted)
    with subscribe(settings, wanted, group=group, start=BEGINNING,
                   warn=lambda _: None) as sub:
        first = _ids(itertools.islice(sub, 7))
    # A crash while handling the 4th of the next alerts: that one comes again, nothing else.
    second: list[str] = []
    with pytest.raises(RuntimeError), subscribe(settings, wanted, group=group,
                                                warn=lambda _: None) as sub:
        for alert in sub:
            second.append(alert.alert_id)
            if len(second) == 4:
                raise RuntimeError("handler crashed")
    with subscribe(settings, wanted, group=group, warn=lambda _: None) as sub:
        rest = _ids(sub)
    assert len(first) == 7
    assert rest[0] == second[-1], "the alert being handled in the crash is delivered again"
    delivered = first + second[:-1] + rest
    assert sorted(delivered) == want, "nothing lost, nothing repeated"
    # Everything handled and committed: the same group now has nothing left.
    with subscribe(settings, wanted, group=group, warn=lambda _: None) as sub:
        assert _ids(sub) == []


def test_since_starts_at_publication_time(settings: Settings,
                                          produced: list[tuple[RiskAlert, int]]) -> None:
    since_ms = produced[30][1]
    # A record stamped before `since` but written after newer ones is excluded too.
    late = produced[2][0]._replace(alert_id="al-late", account_id="ACC001")
    _produce(settings, Codec(LocalCatalogue.load()), [(late, since_ms - 1)])
    with subscribe(settings, AlertFilter(), group=_group(), start=StartAt("time", ts_ms=since_ms),
                   warn=lambda _: None) as sub:
        got = _ids(sub)
    assert sorted(got) == sorted(a.alert_id for a, ts in produced if ts >= since_ms)
    with subscribe(settings, AlertFilter(), group=_group(),
                   start=StartAt("time", ts_ms=produced[-1][1] + 1), warn=lambda _: None) as sub:
        assert _ids(sub) == []


def test_allowed_accounts_cannot_be_widened(settings: Settings,
                                            produced: list[tuple[RiskAlert, int]]) -> None:
    restricted = settings.with_overrides(access_alerts_allowed_accounts=frozenset({"ACC001"}))
    with subscribe(restricted, AlertFilter(), group=_group(), start=BEGINNING,
                   warn=lambda _: None) as sub:
        got = list(sub)
    assert sorted(_ids(got)) == sorted(a.alert_id for a, _ in produced
                                       if a.account_id == "ACC001")
    assert {a.account_id for a in got} == {"ACC001"}
    with subscribe(restricted, AlertFilter.of(accounts=["ACC002"]), group=_group(),
                   start=BEGINNING, warn=lambda _: None) as sub:
        assert list(sub) == []


def test_follow_delivers_new_alerts(settings: Settings,
                                    produced: list[tuple[RiskAlert, int]]) -> None:
    later = [(a._replace(alert_id=f"new-{i}"), int(time.time() * 1000))
             for i, (a, _) in enumerate(produced[:3])]
    got: list[str] = []
    sub = subscribe(settings, AlertFilter(), group=_group(), start=BEGINNING, follow=True,
                    warn=lambda _: None)
    reader = threading.Thread(target=lambda: got.extend(_ids(itertools.islice(sub, N + 3))))
    reader.start()
    time.sleep(1.0)
    _produce(settings, Codec(LocalCatalogue.load()), later)
    reader.join(30)
    assert not reader.is_alive()
    sub.close()
    assert sorted(got) == sorted([*(a.alert_id for a, _ in produced), "new-0", "new-1", "new-2"])


def test_cli_prints_json_lines(settings: Settings,
                               produced: list[tuple[RiskAlert, int]]) -> None:
    env = {**kafka_env(settings),
           "TAPEFLOW_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix}
    runner = CliRunner()
    args = ["alerts", "--from-beginning", "--severity", "warning", "--account", "ACC001",
            "--account", "ACC003", "--group", _group()]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    wanted = AlertFilter.of(accounts=["ACC001", "ACC003"], min_severity="warning")
    assert sorted(d["alert_id"] for d in docs) == _reference(produced, wanted)
    by_id = {a.alert_id: a for a, _ in produced}
    for doc in docs:
        alert = by_id[doc["alert_id"]]
        assert doc["observed"] == f"{alert.observed // 10**8}.{alert.observed % 10**8:08d}"
        assert doc["ts_event"].endswith("Z") and doc["severity"] == str(alert.severity)
    assert "undecodable" in result.stderr

    denied = runner.invoke(app, ["alerts", "--account", "ACC002", "--from-beginning"],
                           env={**env, "TAPEFLOW_ACCESS_ALERTS_ALLOWED_ACCOUNTS": "ACC001"})
    assert denied.exit_code == 2
    assert "ACC002" in denied.stderr and denied.stdout == ""
