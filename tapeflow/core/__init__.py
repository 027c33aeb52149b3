"""Tapeflow's domain core: the business rules, pure and exact.

Imports nothing outside `tapeflow.core` (an import-linter contract): no I/O, no engine, no
clock (time is an argument). Prices, quantities and money are integers at scale 8
(`fixedpoint`), timestamps integer microseconds UTC; the records are `models`. The stream
(Bytewax flows) and the batch (backfill, reconciliation) call the same functions, so a tick is
judged, a candle built and a fill booked the same way whichever path it takes.

Subpackages by domain, each exporting its API from its `__init__`:

- `market`: the tick filter, candles and roll-ups, and the symbol step;
- `trading`: orders (FIX 4.4), the order book, positions and P&L, the account and shard steps,
  reconciliation;
- `risk`: limits, edge-triggered levels, the rules, feed rules, and alert subscriptions.

State: most values are immutable. The exceptions are named for it: a function whose name ends
in `_inplace` advances the state it is given and returns it (or its outputs); the caller treats
the state it passed in as consumed. They exist where copying the state per event would cost
more than the rules (a 50-price window per tick, a shard of accounts per report), and each says
why in its docstring. Every state pickles (recovery snapshots) and equal inputs give equal
states and outputs.
"""
