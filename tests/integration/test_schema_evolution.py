"""A producer moves to a new Trade schema mid-stream; the market flow reads both versions.

The real broker and chDB, a schema registry (confluent-kafka's mock registry, one client shared
by producer and flow because each mock instance has its own store, docs/design.md). Trades are
produced with this version's Trade schema, then with a new version that adds an optional field
(`aggressor`, placed between existing fields, so resolution is by name, not position), then
with the old one again (a fleet of producers halfway through a rolling upgrade). The new
frames are written by plain fastavro from the new schema, not by Tapeflow's codec.

What it proves:
- the new version gets a new schema id and `tapeflow init`'s check accepts it;
- one run of the flow stores every trade of both versions in ClickHouse, exactly, and
  dead-letters nothing (the codec resolves the new writer schema to its reader schema);
- the marks the flow writes carry the id of the schema they are written with (this version's),
  not the subject's latest: a consumer decodes them with the id's schema.
"""

from __future__ import annotations

import copy
import io
import uuid
from typing import Any

import fastavro
from bytewax.testing import run_main

from flows.market import build_flow
from jobs.init import check_schemas, create_topics, init_clickhouse
from schemas.catalogue import (
    TOPIC_DLQ,
    TOPIC_MARKS,
    TOPIC_TRADES,
    RegistryCatalogue,
    current_schema,
)
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import end_offsets, read_all
from tapeflow.core.fixedpoint import to_decimal
from tapeflow.core.models import Trade
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.settings import Settings

SUBJECT = "md.trades-value"
T0 = 1_790_000_000_000_000


def _trade_v2() -> dict[str, Any]:
    schema = copy.deepcopy(current_schema("Trade"))
    at = [f["name"] for f in schema["fields"]].index("size") + 1
    schema["fields"].insert(at, {"name": "aggressor", "type": ["null", "string"],
                                 "default": None, "doc": "BUY or SELL when the venue says."})
    return schema


def _frame_v2(parsed: Any, schema_id: int, trade: Trade, aggressor: str | None) -> bytes:
    """A new-version frame as any Avro producer writes it: fastavro, Decimal values."""
    buf = io.BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(buf, parsed, {
        "symbol": trade.symbol, "venue": trade.venue, "ts_event": trade.ts_event,
        "seq": trade.seq, "price": to_decimal(trade.price), "size": to_decimal(trade.size),
        "aggressor": aggressor, "trade_id": trade.trade_id, "conditions": list(trade.conditions),
    })
    return buf.getvalue()


def _trades(symbol: str, seqs: range) -> list[Trade]:
    return [Trade(symbol, "XNAS", T0 + seq * 100_000, seq, 100_00000000 + seq, (seq % 7 + 1)
                  * 100_000_000, f"{symbol}-{seq}", ("@",) if seq % 2 else ()) for seq in seqs]


def test_old_and_new_trade_schemas_in_one_run(settings: Settings) -> None:
    settings = settings.with_overrides(clickhouse_database=f"tf_evo_{uuid.uuid4().hex[:8]}")
    init_clickhouse(settings)
    create_topics(settings)
    registry = RegistryCatalogue.from_url(f"mock://evolution-{uuid.uuid4().hex[:8]}")
    v1_id = registry.register_current()[SUBJECT]
    codec = Codec(registry)
    topic = settings.topic(TOPIC_TRADES)
    writer = KafkaWriter(settings.kafka_config())

    old_first = _trades("AAA", range(1, 41)) + _trades("BBB", range(1, 41))
    for trade in old_first:
        writer.send(topic, codec.encode(trade), key=trade.symbol)

    v2 = _trade_v2()
    v2_id = registry.register(SUBJECT, v2)
    assert v2_id != v1_id
    assert check_schemas(settings, registry) == "compatible with 8 registered versions"
    parsed_v2 = fastavro.parse_schema(v2)
    new = _trades("AAA", range(41, 81)) + _trades("BBB", range(41, 81))
    for i, trade in enumerate(new):
        frame = _frame_v2(parsed_v2, v2_id, trade, ("BUY", "SELL", None)[i % 3])
        assert int.from_bytes(frame[1:5], "big") == v2_id
        writer.send(topic, frame, key=trade.symbol)
    old_again = _trades("AAA", range(81, 101)) + _trades("BBB", range(81, 101))
    for trade in old_again:  # a producer not upgraded yet
        writer.send(topic, codec.encode(trade), key=trade.symbol)
    writer.flush()

    # The flow's own codec over the same registry: it learns the new id when it sees it.
    run_main(build_flow(settings, tail=False, codec=Codec(registry)))

    client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse.database)
    got = [tuple(r) for r in client.query(
        "SELECT symbol, venue, ts_event, seq, price, size, trade_id, conditions FROM trades",
        query_formats={"DateTime64*": "int"}).result_rows]
    want = [(t.symbol, t.venue, t.ts_event, t.seq, to_decimal(t.price), to_decimal(t.size),
             t.trade_id, list(t.conditions)) for t in old_first + new + old_again]
    assert sorted(got) == sorted(want)
    assert sum(end_offsets(settings.kafka_config(), settings.topic(TOPIC_DLQ)).values()) == 0

    marks = read_all(settings.kafka_config(), settings.topic(TOPIC_MARKS))
    assert marks
    assert {int.from_bytes(m.value()[1:5], "big") for m in marks} == {v1_id}
    last = {t.symbol: t for t in old_again}
    decoded = [codec.decode(m.value(), expect="Trade") for m in marks]
    assert {m.symbol: m for m in decoded} == last
