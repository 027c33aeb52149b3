"""Soak: the market flow for N minutes at a steady live rate; its RSS must stay flat.

Not a test: a measurement (#6, "Bounded state"). It starts a Kafka broker of its own (or uses
`TAPEFLOW_TEST_KAFKA_BOOTSTRAP`), an embedded ClickHouse in a temporary directory, and
`tapeflow run market` (continuous, recovery on, metrics on) as a subprocess. A synthetic market
whose event time starts now is produced at its own pace (each record sent when the wall clock
reaches its event time), so the flow runs as it would on a live feed: watermarks advance,
buckets close, retained state ages out.

The state bounds are settings. They are set lower than their defaults here (sequence window
1,024 numbers, late horizon 2 minutes), so that every bound is reached within the warm-up and
the rest of the run shows whether anything else grows. With the defaults (4,096 numbers, 1 h),
the same flat line starts once an hour of market has passed.

RSS (VmRSS of the flow process) is sampled every `--sample-s`; the report gives RSS after the
warm-up and at the end, the growth between them, the least-squares slope over that window,
and the ticks the flow took in against those produced (to show it kept up).

Run:  uv run python bench/soak_market.py [--minutes 10] [--rate 2000] [--symbols 20]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from jobs.init import create_topics
from jobs.local.kafka_broker import LocalKafka
from jobs.local.ports import free_port
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.synthetic import Garbage, MarketSpec, generate_market
from tapeflow.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def _rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else 0.0


def _ticks_in(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return -1.0
    return sum(float(m.group(1)) for m in
               re.finditer(r"^tapeflow_ticks_in_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def _slope_mib_per_min(samples: list[tuple[float, float]]) -> float:
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return 60.0 * cov / var if var else 0.0


class Soak:
    """The services and the flow process of one soak run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        bootstrap = os.environ.get("TAPEFLOW_TEST_KAFKA_BOOTSTRAP")
        self.broker: LocalKafka | None = None
        if not bootstrap:
            self.broker = LocalKafka(root / "broker", free_port(), secure=False)
            self.broker.start()
            bootstrap = self.broker.bootstrap
        prefix = f"soak{uuid.uuid4().hex[:6]}."
        chdb = f"chdb://{root / 'chdb'}"
        self.settings = Settings(home=root / "home", kafka_bootstrap=bootstrap,
                                 kafka_topic_prefix=prefix, clickhouse_dsn=chdb)
        create_topics(self.settings)
        subprocess.run([sys.executable, "-c", "from jobs.init import init_clickhouse; "
                        "from tapeflow.settings import Settings; init_clickhouse(Settings())"],
                       check=True, cwd=REPO, env={**os.environ, "TAPEFLOW_CLICKHOUSE_DSN": chdb})
        self.metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
        env.update({"TAPEFLOW_KAFKA_BOOTSTRAP": bootstrap, "TAPEFLOW_KAFKA_TOPIC_PREFIX": prefix,
                    "TAPEFLOW_HOME": str(root / "home"), "TAPEFLOW_CLICKHOUSE_DSN": chdb,
                    "TAPEFLOW_METRICS_PORT": str(self.metrics_port),
                    "TAPEFLOW_MARKET_SEQ_WINDOW": "1024", "TAPEFLOW_MARKET_LATE_HORIZON_S": "120"})
        self.log = root / "flow.log"
        with self.log.open("wb") as log:
            self.flow = subprocess.Popen([sys.executable, "-m", "tapeflow.cli", "run", "market"],
                                         cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        while _ticks_in(self.metrics_port) < 0:
            if self.flow.poll() is not None:
                raise SystemExit(f"the flow exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.5)

    def produce(self, spec: MarketSpec, sample_s: float) -> list[tuple[float, float]]:
        """Send every record when the wall clock reaches its event time; sample the RSS."""
        market = generate_market(spec)
        self.ticks = len(market.trades) + len(market.quotes)
        codec = Codec(LocalCatalogue.load())
        writer = KafkaWriter(self.settings.kafka_config())
        samples: list[tuple[float, float]] = []
        next_sample = 0.0
        wall0 = time.monotonic() + (spec.start_us - time.time_ns() // 1000) / 1e6
        for topic, key, record in market.stream():
            if isinstance(record, Garbage):
                value = record.frame(codec.encode)
            else:
                due = wall0 + (record.ts_event - spec.start_us) / 1e6
                while (wait := due - time.monotonic()) > 0:
                    time.sleep(min(wait, 0.05))
                value = codec.encode(record)
            writer.send(self.settings.topic(topic), value, key=key)
            elapsed = time.monotonic() - wall0
            if elapsed >= next_sample:
                samples.append((elapsed, _rss_mib(self.flow.pid)))
                next_sample += sample_s
        writer.flush()
        time.sleep(10)
        self.taken = _ticks_in(self.metrics_port)
        samples.append((time.monotonic() - wall0, _rss_mib(self.flow.pid)))
        return samples

    def stop(self) -> None:
        self.flow.send_signal(signal.SIGTERM)
        self.flow.wait(timeout=120)
        if self.broker is not None:
            self.broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="ticks per second")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--warmup-minutes", type=float, default=3.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    args = parser.parse_args()

    soak = Soak(Path(tempfile.mkdtemp(prefix="tapeflow-soak-")))
    spec = MarketSpec(seed=41, n_symbols=args.symbols, n_accounts=0,
                      start_us=time.time_ns() // 1000 + 10_000_000,
                      duration_s=args.minutes * 60, trade_rate=args.rate / 4,
                      quote_rate=args.rate * 3 / 4, fault_rate=0.01)
    try:
        samples = soak.produce(spec, args.sample_s)
    finally:
        soak.stop()

    warm = [(t, r) for t, r in samples if t >= args.warmup_minutes * 60]
    first, last = warm[0][1], warm[-1][1]
    print(f"soak: {args.minutes:g} min at {args.rate:g} ticks/s, {args.symbols} symbols, "
          f"{soak.ticks:,} ticks produced; the flow took in {soak.taken:,.0f}")
    print(f"RSS after {args.warmup_minutes:g} min warm-up: {first:.1f} MiB; at the end: "
          f"{last:.1f} MiB; growth {last - first:+.1f} MiB ({100 * (last - first) / first:+.1f} %)"
          f"; slope {_slope_mib_per_min(warm):+.2f} MiB/min")
    print("samples (s, MiB): " + ", ".join(f"{t:.0f}:{r:.0f}" for t, r in samples))
    print(f"flow log: {soak.log}")


if __name__ == "__main__":
    main()
