"""A schema registry that stops answering loses no valid record (issue 14, docs/bad-input.md).

Against a real HTTP server speaking the Confluent registry API (tests/support/registry_server.py)
that is switched off mid-test. What must hold:
- only an answer "not found" makes a schema id unknown (a dead letter `unknown_schema_id`), and
  that answer is asked once, then remembered;
- no answer (connection closed without a response, or a request held past the client's timeout)
  blocks the lookup, which is retried on the sinks' schedule with one warning line and one count
  of `tapeflow_schema_registry_retries_total` per retry, and succeeds once the registry is back;
- past the deadline, or on an answer that is not about the schema (a 404 from the wrong path),
  the lookup raises a store error, never a decode error: the flows stop instead of
  dead-lettering valid records;
- end to end, the market flow reading from Kafka through a registry that is down when it starts
  stores every tick and dead-letters only the frames whose id the registry does not know.
  Before, every frame decoded while the registry was down became `unknown_schema_id`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest
from bytewax.testing import run_main

from flows.market import build_flow
from flows.market_logic import TickBatchDecoder
from flows.operators import BatchDecodeOrLetter
from jobs.init import create_topics, init_clickhouse
from schemas.catalogue import (
    REGISTRY_RETRIES,
    TOPIC_DLQ,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    LocalCatalogue,
    RegistryCatalogue,
    RegistryRefusedError,
    RegistryUnavailableError,
)
from schemas.codec import Codec, DecodeError
from sinks.kafka.producer import KafkaWriter
from sources.kafka.flow_source import MessageBatch
from sources.kafka.topic_reader import read_all
from tapeflow.core.models import Quote, Trade
from tapeflow.errors import StoreError
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.retry import RetryPolicy
from tapeflow.settings import Settings
from tests.support.registry_server import RegistryServer, registry_server

NOW = 1_790_000_000_000_000
ONE = 100_000_000
FAST = RetryPolicy(backoff_s=0.05, max_backoff_s=0.2, deadline_s=30.0)
LOCAL = Codec(LocalCatalogue.load())


def _trade(seq: int, symbol: str = "AAA") -> Trade:
    return Trade(symbol, "XNAS", NOW + seq * 1_000, seq, 10 * ONE, ONE, f"T{seq}", ())


def _with_id(frame: bytes, schema_id: int) -> bytes:
    return frame[:1] + schema_id.to_bytes(4, "big") + frame[5:]


def _retries(operation: str) -> float:
    return REGISTRY_RETRIES.labels(operation)._value.get()


def _back_up_after(server: RegistryServer, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, server.set_mode, args=("up",))
    timer.start()
    return timer


@pytest.fixture
def server() -> Any:
    with registry_server() as running:
        yield running


def test_no_answer_blocks_and_retries_only_not_found_is_unknown(
        server: RegistryServer, caplog: pytest.LogCaptureFixture) -> None:
    catalogue = RegistryCatalogue.from_url(server.url, retry=FAST, timeout_s=0.5)
    codec = Codec(catalogue)
    trade = LOCAL.encode(_trade(1))
    quote = LOCAL.encode(Quote("AAA", "XNAS", NOW, 1, ONE, ONE, 2 * ONE, ONE))
    before = _retries("schema")

    # Connections closed without an answer, for 1 s: the lookup waits, then decodes.
    server.set_mode("down")
    timer = _back_up_after(server, 1.0)
    with caplog.at_level(logging.WARNING, logger="tapeflow.schemas.registry"):
        assert codec.decode(trade, expect="Trade") == _trade(1)
    timer.join()
    assert server.unanswered >= 2 and catalogue.retries >= 2
    assert _retries("schema") - before == catalogue.retries
    assert f"the schema registry at {server.url} gave no answer to schema id 1 (attempt 1, " \
        "gives up 30 s after the first failure): RemoteProtocolError" in caplog.text

    # A registry holding each request past the client's timeout: the same.
    server.hang_s = 1.0
    server.set_mode("hang")
    timer = _back_up_after(server, 1.2)
    assert codec.decode(quote, expect="Quote") == Quote("AAA", "XNAS", NOW, 1, ONE, ONE, 2 * ONE,
                                                        ONE)
    timer.join()
    assert "gave no answer to schema id 2" in caplog.text and "ReadTimeout" in caplog.text

    # "Not found" is an answer: a dead letter's reason, asked once and remembered.
    for _ in range(3):
        with pytest.raises(DecodeError) as unknown:
            codec.decode(_with_id(trade, 77))
        assert unknown.value.reason == "unknown_schema_id"
    assert server.answered("GET /schemas/ids/77") == 1
    # Found schemas are asked once too.
    assert codec.decode(trade, expect="Trade") == _trade(1)
    assert server.answered("GET /schemas/ids/1") == 1


def test_past_the_deadline_or_on_a_foreign_answer_the_flow_stops_instead(
        server: RegistryServer, caplog: pytest.LogCaptureFixture) -> None:
    frame = LOCAL.encode(_trade(1))
    server.set_mode("down")
    short = RetryPolicy(backoff_s=0.05, max_backoff_s=0.2, deadline_s=1.0)
    codec = Codec(RegistryCatalogue.from_url(server.url, retry=short, timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="gave no answer to schema id 1 "
                       r"\(gives up 1 s after the first failure\)"):
        codec.decode(frame)
    assert 1.0 <= time.monotonic() - started < 10

    # The flows' decode step lets it stop the flow: no dead letter for a valid record.
    decode = BatchDecodeOrLetter(TickBatchDecoder(codec, {"t.md.trades": "Trade"}), "market")
    batch = MessageBatch("t.md.trades", 0, [b"AAA"], [frame], [5], [None])
    with caplog.at_level(logging.ERROR), pytest.raises(StoreError):
        decode(batch)
    assert "market flow stops at t.md.trades[0] offset 5" in caplog.text

    # A 404 that is not the registry's own "not found" (a wrong base path) is no verdict on
    # the schema either.
    server.set_mode("up")
    wrong = Codec(RegistryCatalogue.from_url(f"{server.url}/wrong", retry=short))
    with pytest.raises(RegistryRefusedError, match="refused schema id 1"):
        wrong.decode(frame)


def test_the_market_flow_waits_for_the_registry_and_loses_nothing(
        server: RegistryServer, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings.with_overrides(clickhouse_database=f"tf_reg_{uuid.uuid4().hex[:8]}",
                                       schema_registry_url=server.url,
                                       schema_registry_timeout_s=0.5)
    init_clickhouse(settings)
    create_topics(settings)
    writer = KafkaWriter(settings.kafka_config())
    trades = [_trade(seq, symbol) for symbol in ("AAA", "BBB") for seq in range(1, 21)]
    quotes = [Quote(s, "XNAS", NOW, 1, 9 * ONE, ONE, 11 * ONE, ONE) for s in ("AAA", "BBB")]
    for quote in quotes:
        writer.send(settings.topic(TOPIC_QUOTES), LOCAL.encode(quote), key=quote.symbol)
    for trade in trades:
        writer.send(settings.topic(TOPIC_TRADES), LOCAL.encode(trade), key=trade.symbol)
    unknown = _with_id(LOCAL.encode(_trade(99, "ZZZ")), 77)
    for _ in range(2):
        writer.send(settings.topic(TOPIC_TRADES), unknown, key="ZZZ")
    writer.flush()

    # Down for longer than the client's own retries used to cover (3 retries, at most 7 s of
    # jittered waits), so the old code dead-lettered the first frames.
    server.set_mode("down")
    timer = _back_up_after(server, 8.0)
    with caplog.at_level(logging.WARNING):
        run_main(build_flow(settings, tail=False))
    timer.join()
    assert server.unanswered >= 3
    assert "gave no answer to schema id" in caplog.text

    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    stored = client.query("SELECT count() FROM trades FINAL").result_rows[0][0]
    stored_quotes = client.query("SELECT count() FROM quotes FINAL").result_rows[0][0]
    assert (stored, stored_quotes) == (len(trades), len(quotes))
    letters = [LOCAL.decode(m.value(), expect="DeadLetter")
               for m in read_all(settings.kafka_config(), settings.topic(TOPIC_DLQ), expect=2)]
    assert sorted(letter.reason for letter in letters) == ["unknown_schema_id"] * 2
    assert all(letter.raw == unknown for letter in letters)
    assert server.answered("GET /schemas/ids/77") == 1
