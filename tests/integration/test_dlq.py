"""`tapeflow dlq list|replay` over the real flows, broker and stores (issue 14).

Dead letters of three kinds are made by the flows themselves: frames whose schema id the
catalogue does not hold (`unknown_schema_id`) and a trade with a NUL (`nul_byte`) from the
market flow; rows Postgres refuses (a CHECK constraint an operator added) from the trading flow
(`store_refused`). Then:
- `list` counts them by reason and source, and `--letters` shows each with its place;
- `replay` needs a selection; `--dry-run` changes nothing;
- once a cause is fixed (the id added to a catalogue copy; the constraint dropped), `replay`
  re-injects: a frame goes back to its topic byte for byte, under its key and Kafka timestamp,
  and decodes with the fixed catalogue; refused rows go back to Postgres, and the order appears;
- a store letter the store refuses again is reported and not recorded;
- replaying again re-injects nothing (the `dlq_replays` ledger), and `list` counts them as
  replayed.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.testing import run_main
from typer.testing import CliRunner

from flows.market import build_flow as market_flow
from flows.trading import build_flow as trading_flow
from jobs.init import create_topics, init_clickhouse, init_postgres
from schemas.catalogue import CATALOGUE_FILE, TOPIC_EXECUTIONS, TOPIC_TRADES, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.kafka.topic_reader import read_all
from tapeflow.cli import app
from tapeflow.core.models import Trade
from tapeflow.core.trading.shard_step import ShardConfig
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings
from tests.support.kafka_env import child_env
from tests.support.trading_builders import OrderSim, u

CODEC = Codec(LocalCatalogue.load())
NOW = 1_790_000_000_000_000
SENT_MS = 1_790_000_123_456  # the Kafka timestamp of the frames produced below


def _trade(symbol: str, seq: int) -> Trade:
    return Trade(symbol, "XNAS", NOW + seq, seq, u(10), u(1), None, ())


def _pg(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    assert settings.postgres.dsn is not None
    with connect_postgres(settings.postgres.dsn.get_secret_value(), settings.postgres.schema,
                          autocommit=True) as conn:
        cursor = conn.execute(sql)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []


def test_list_and_replay_dead_letters_once_their_cause_is_fixed(settings: Settings,
                                                               tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = settings.with_overrides(clickhouse_database=f"tf_dlq_{tag}",
                                       postgres_schema=f"tf_dlq_{tag}")
    assert settings.postgres.dsn is not None
    init_clickhouse(settings)
    init_postgres(settings, settings.postgres.dsn.get_secret_value())
    create_topics(settings)
    _pg(settings, "ALTER TABLE orders ADD CONSTRAINT no_poison CHECK (order_id <> 'POISON')")

    writer = KafkaWriter(settings.kafka_config())
    unknown = [CODEC.encode(_trade("UNK", seq)) for seq in (1, 2)]
    unknown = [frame[:1] + (77).to_bytes(4, "big") + frame[5:] for frame in unknown]
    trades = settings.topic(TOPIC_TRADES)
    writer.send(trades, CODEC.encode(_trade("AAA", 1)), key="AAA", timestamp_ms=SENT_MS)
    for frame in unknown:
        writer.send(trades, frame, key="UNK", timestamp_ms=SENT_MS)
    writer.send(trades, CODEC.encode(_trade("N\x00L", 1)), key="NUL", timestamp_ms=SENT_MS)
    good, poison = OrderSim("GOOD", qty=u(5)), OrderSim("POISON", qty=u(5))
    for report in (good.new(), poison.new(), good.fill(u(5), u(100)), poison.fill(u(5), u(99))):
        writer.send(settings.topic(TOPIC_EXECUTIONS), CODEC.encode(report),
                    key=report.account_id)
    writer.flush()

    run_main(market_flow(settings, tail=False, codec=CODEC))
    run_main(trading_flow(settings, tail=False, codec=CODEC, tick=timedelta(seconds=1),
                          shard_config=ShardConfig(snapshot_interval_us=10_000_000)))
    assert [r[0] for r in _pg(settings, "SELECT order_id FROM orders")] == ["GOOD"]

    env = child_env(settings)

    def cli(*args: str, extra: dict[str, str] | None = None) -> Any:
        return CliRunner().invoke(app, list(args), env={**env, **(extra or {})})

    def counts() -> dict[tuple[str, str], tuple[int, int, int]]:
        listed = cli("dlq", "list", "-f", "json")
        assert listed.exit_code == 0, listed.output
        return {(r["reason"], r["source"]): (r["letters"], r["replayable"], r["replayed"])
                for r in json.loads(listed.stdout)}

    assert counts() == {("unknown_schema_id", trades): (2, 2, 0),
                        ("nul_byte", trades): (1, 1, 0),
                        ("store_refused", "postgres"): (2, 2, 0)}
    each = json.loads(cli("dlq", "list", "--letters", "--reason", "store_refused", "-f",
                          "json").stdout)
    assert len(each) == 2
    assert all(r["source"] == "postgres" and r["origin"] == "" for r in each)
    assert all("CheckViolation [SQLSTATE 23514]" in r["detail"] and "no_poison" in r["detail"]
               for r in each)
    table = cli("dlq", "list")
    assert table.exit_code == 0 and "store_refused" in table.stdout

    refused = cli("dlq", "replay")
    assert refused.exit_code == 2 and "say which letters to replay" in refused.output
    dry = cli("dlq", "replay", "--reason", "unknown_schema_id", "--dry-run")
    assert f"would re-inject 2 letter(s) into {trades}" in dry.stdout
    assert counts()[("unknown_schema_id", trades)] == (2, 2, 0)

    # The cause fixed: a catalogue copy that holds id 77 (docs/schema-evolution.md).
    fixed = tmp_path / "catalogue.json"
    doc = json.loads(CATALOGUE_FILE.read_text())
    for entry in doc["schemas"]:  # files are relative to the catalogue: point at ours
        entry["file"] = str(CATALOGUE_FILE.parent / entry["file"])
    doc["schemas"].append({"id": 77, "subject": "md.trades-value",
                           "file": str(CATALOGUE_FILE.parent / "avro" / "Trade.avsc")})
    fixed.write_text(json.dumps(doc))
    before = {(m.partition(), m.offset()) for m in read_all(settings.kafka_config(), trades)}
    done = cli("dlq", "replay", "--reason", "unknown_schema_id")
    assert done.exit_code == 0 and f"re-injected 2 letter(s) into {trades}" in done.stdout
    again = [m for m in read_all(settings.kafka_config(), trades)
             if (m.partition(), m.offset()) not in before]
    assert sorted(m.value() for m in again) == sorted(unknown)
    assert {m.key() for m in again} == {b"UNK"}
    assert {m.timestamp()[1] for m in again} == {SENT_MS}  # the stream's receive time kept
    now_known = Codec(LocalCatalogue.load(fixed))
    assert sorted(now_known.decode(m.value()).seq for m in again) == [1, 2]

    # Store letters: refused again while the constraint stands, written once it is gone.
    still = cli("dlq", "replay", "--source", "postgres")
    assert still.exit_code == 0 and still.stdout.count("refused again by postgres") == 2
    _pg(settings, "ALTER TABLE orders DROP CONSTRAINT no_poison")
    written = cli("dlq", "replay", "--source", "postgres")
    assert "re-injected 2 letter(s) into postgres" in written.stdout, written.output
    orders = dict(_pg(settings, "SELECT order_id, status FROM orders"))
    assert orders == {"GOOD": "FILLED", "POISON": "FILLED"}
    assert len(_pg(settings, "SELECT exec_id FROM execution_log")) == 4

    # Idempotent: nothing is re-injected twice; the ledger counts them.
    twice = cli("dlq", "replay", "--all")
    assert "re-injected 1 letter(s) into " + trades in twice.stdout  # only the NUL one left
    assert "skipped 4 letter(s) replayed before" in twice.stdout
    assert cli("dlq", "replay", "--all").stdout.startswith("re-injected nothing")
    assert counts()[("store_refused", "postgres")] == (2, 2, 2)
    assert counts()[("unknown_schema_id", trades)] == (2, 2, 2)
