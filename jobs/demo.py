"""`tapeflow demo`, the preparation half: services, schemas, topics and a synthetic market.

The CLI runs the flows afterwards (only the CLI may import flows), then prints the summary
of `jobs.summary`.
"""

from __future__ import annotations

from collections.abc import Iterator

from jobs.generate import MarketRequest, produce_market
from jobs.init import run_init
from jobs.local.services import resolve
from schemas.codec import codec_for
from sources.synthetic import generate_market
from tapeflow.settings import Settings


def prepare_demo(settings: Settings, *, minutes: float, seed: int) -> Iterator[str | Settings]:
    """Yield progress lines, then the resolved settings (last) for the flows to use."""
    yield "starting local services (Kafka broker, embedded Postgres, embedded ClickHouse)..."
    settings = resolve(settings)
    assert settings.postgres.dsn is not None
    yield f"  Kafka at {settings.kafka.bootstrap}; stores under {settings.home.resolve()}"
    yield from ("  " + line for line in
                run_init(settings, settings.postgres.dsn.get_secret_value()).lines())
    # Each demo run is the next trading day, so a second run adds new market instead of
    # replaying the first one's sequence numbers (which the filter would rightly reject as
    # duplicates). The seed stays: it fixes the instruments and their price levels.
    runs_file = settings.home / "demo-runs"
    day = int(runs_file.read_text()) if runs_file.exists() else 0
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    runs_file.write_text(str(day + 1))
    market = generate_market(MarketRequest(seed=seed, minutes=minutes, day=day).spec())
    summary = market.summary()
    yield (f"generating {minutes:g} minutes of market (day {day + 1}, seed {seed}): "
           f"{summary['trades']:,} trades, {summary['quotes']:,} quotes, "
           f"{summary['executions']:,} execution reports, {summary['faults']:,} injected faults")
    produced = produce_market(settings, market, codec_for(settings, register=True))
    yield "produced " + ", ".join(f"{t} {n:,}" for t, n in sorted(produced.items()))
    yield settings
