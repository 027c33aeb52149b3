"""`tapeflow demo`: prepare everything locally, run both flows over the market, summarise."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator

from tapeflow.config import Settings

NEXT_STEPS = (
    "next steps:",
    "  tapeflow run market            # keep the market flow running (Ctrl-C to stop)",
    "  tapeflow generate --kafka      # feed it more market",
    "  tapeflow generate --out data/  # the same market as Parquet, with truth labels",
)


def run_demo(settings: Settings, *, minutes: float, seed: int) -> Iterator[str]:
    from jobs.demo import prepare_demo
    from jobs.summary import market_summary, trading_summary
    from tapeflow.cli.run import RunOptions, run

    started = time.monotonic()
    for item in prepare_demo(settings, minutes=minutes, seed=seed):
        if isinstance(item, Settings):
            settings = item
        else:
            yield item
    flows = ["market"]
    if importlib.util.find_spec("flows.trading") is not None:
        flows.append("trading")
    for flow in flows:
        flow_started = time.monotonic()
        # Batch mode reads what the topics hold now; recovery makes a second demo resume
        # where the first stopped instead of counting the same ticks again.
        run(settings, RunOptions(flow=flow, batch=True, snapshot_s=5.0))
        yield f"ran the {flow} flow over it in {time.monotonic() - flow_started:.1f} s"
    yield from market_summary(settings)
    if "trading" in flows:
        yield from trading_summary(settings)
    yield f"done in {time.monotonic() - started:.1f} s."
    yield from NEXT_STEPS
