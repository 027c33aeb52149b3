"""The Kafka broker a benchmark measures on (bench/scale_market.py, bench/market_flow.py,
bench/trading_flow.py, bench/alert_latency.py).

`TAPEFLOW_TEST_KAFKA_BOOTSTRAP` if set and it answers without credentials, else a LocalKafka
without authentication started on a free port under a temporary home (stopped at the end): the
figures of earlier versions were measured without authentication, the suite's test broker is
authenticated (SASL/SCRAM, docs/security.md), and a benchmark has no credentials of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.local.kafka_broker import LocalKafka, broker_answers
from jobs.local.ports import free_port


@contextmanager
def bench_broker(tmpdir: Path) -> Iterator[str]:
    """A bootstrap address: the configured broker if it answers unauthenticated, else one
    started here under `tmpdir`."""
    bootstrap = os.environ.get("TAPEFLOW_TEST_KAFKA_BOOTSTRAP")
    if bootstrap and broker_answers(bootstrap):
        yield bootstrap
        return
    broker = LocalKafka(tmpdir / "broker-home", free_port(), secure=False)
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
