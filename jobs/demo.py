"""`tapeflow demo`: everything local, end to end, with a summary of what came out.

Until the dataflows land (issue 4) the demo starts the services, initialises them, produces a
synthetic market into Kafka, and reads it back through the codec, counting what decodes and
what would be dead-lettered, so a newcomer sees the wire contract working on real services.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from jobs.generate import MarketRequest, codec_for, produce_market
from jobs.init import ALL_TOPICS, run_init
from jobs.local.services import resolve
from schemas.codec import DecodeError
from sources.kafka_reader import end_offsets, read_all
from sources.synthetic import TOPICS, generate_market
from tapeflow.config import Settings

EXPECTED_RECORD = {"md.trades": "Trade", "md.quotes": "Quote", "oms.executions": "ExecutionReport"}


def run_demo(settings: Settings, *, minutes: float, seed: int) -> Iterator[str]:
    started = time.monotonic()
    yield "starting local services (Kafka broker, embedded Postgres, embedded ClickHouse)..."
    settings = resolve(settings)
    assert settings.postgres_dsn is not None
    yield f"  Kafka at {settings.kafka_bootstrap}; stores under {settings.home.resolve()}"
    yield from ("  " + line for line in
                run_init(settings, settings.postgres_dsn.get_secret_value()).lines())

    request = MarketRequest(seed=seed, minutes=minutes)
    market = generate_market(request.spec())
    yield f"generating {minutes:g} minutes of market (seed {seed}): " + ", ".join(
        f"{k} {v:,}" for k, v in market.summary().items())
    codec = codec_for(settings)
    conf = settings.kafka_config()
    before = {t: end_offsets(conf, settings.topic(t)) for t in TOPICS}
    produced = produce_market(settings, market, codec)
    yield "produced " + ", ".join(f"{t} {n:,}" for t, n in sorted(produced.items()))

    yield "reading the topics back through the codec:"
    for topic in TOPICS:
        full = settings.topic(topic)
        messages = read_all(conf, full, expect=produced.get(full, 0), start=before[topic])
        decoded: Counter[str] = Counter()
        dead: Counter[str] = Counter()
        for msg in messages:
            try:
                codec.decode(msg.value(), expect=EXPECTED_RECORD[topic])
                decoded["ok"] += 1
            except DecodeError as exc:
                dead[exc.reason] += 1
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(dead.items())) or "none"
        yield f"  {full}: {decoded['ok']:,} decoded, {sum(dead.values())} for the DLQ ({reasons})"
    yield f"done in {time.monotonic() - started:.1f} s. Topics: " + ", ".join(
        settings.topic(t) for t in ALL_TOPICS)
    yield "next: `tapeflow generate --out data/` writes the same market to Parquet with labels"
