"""`tapeflow demo`: prepare everything locally, run both flows over the market, summarise."""

from __future__ import annotations

import time
from collections.abc import Iterator

from tapeflow.settings import Settings

NEXT_STEPS = (
    "next steps:",
    "  tapeflow query candles SYM001 --interval 5m   # or vwap, rejects, pnl, positions, alerts",
    "  tapeflow chart SYM001 --interval 1m --output sym001.html",
    "  tapeflow alerts --from-beginning --severity WARNING",
    "  tapeflow status                # services, consumer lag, freshness",
    "  tapeflow run all               # keep both flows running (Ctrl-C stops cleanly)",
    "  tapeflow generate --kafka      # feed it more market",
)


def run_demo(settings: Settings, *, minutes: float, seed: int,
             serve: bool = False) -> Iterator[str]:
    from jobs.demo import prepare_demo
    from jobs.summary import market_summary, trading_summary
    from tapeflow.runtime.run import RunOptions, run

    started = time.monotonic()
    for item in prepare_demo(settings, minutes=minutes, seed=seed):
        if isinstance(item, Settings):
            settings = item
        else:
            yield item
    flow_started = time.monotonic()
    # Both flows in one dataflow: the embedded ClickHouse opens in one process only. Batch
    # mode reads what the topics hold now; recovery makes a second demo resume where the
    # first stopped instead of counting the same ticks again.
    run(settings.with_overrides(snapshot_interval_s=5.0), RunOptions(flow="all", batch=True))
    yield (f"ran the market and trading flows over it (tapeflow run all) in "
           f"{time.monotonic() - flow_started:.1f} s")
    yield from market_summary(settings)
    yield from trading_summary(settings)
    yield f"done in {time.monotonic() - started:.1f} s."
    if not serve:
        yield from NEXT_STEPS
        return
    # The flows keep running (resuming from the batch run's snapshot) and the live view is
    # served from their process, which holds the embedded ClickHouse.
    live = settings.runtime
    yield (f"live view on http://{live.web_host}:{live.web_port} while both flows keep "
           "running; `tapeflow generate --kafka` in another terminal feeds them; Ctrl-C stops")
    run(settings, RunOptions(flow="all", serve=True))
