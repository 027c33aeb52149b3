"""A deterministic synthetic market: the tape, the order flow, injected faults, and the truth.

`generate_market(MarketSpec(seed=7))` returns a `Market`: instruments, trades, quotes and
execution reports in *arrival* order (the order a producer writes them to Kafka), the
undecodable records (`Garbage`) that a broken producer would write, and one `Label` per
record saying what it is, which fault (if any) was injected, and which verdict the pipeline
should reach. Tests, the demo and the benchmarks all read from here; import from this package,
which re-exports the public names of its modules. docs/synthetic.md describes the model.

Determinism: every draw comes from `random.Random` instances seeded from the spec (one per
concern: the model, the tick faults, the orders, the execution faults; so the order flow never
changes the tape), there is no clock, no global random state, and no iteration over hashed
strings. The same spec gives the same records on every run, whatever PYTHONHASHSEED (and the
same Parquet bytes: `jobs.generate.write_market_parquet`).

Where things are:

- `spec`: `MarketSpec`, the only input; `instruments`: the reference data;
- `records`: topics, record kinds, `Garbage`; `labels`: `Fault`, `Reason`, `Label`;
  `market`: `Market`, the result, and its lazily built `Labels`;
- `tape`: `generate_market` and the hot loop drawing trades and quotes; `tape_model`: the
  per-symbol model state it walks; `arrivals`: the stream under construction;
- `faults`: which fault a record gets and what it looks like; `schedule`: records that arrive
  later (re-sends, late and out-of-order ticks), merged with the order flow's steps;
- `orders`: the order simulator and its FIX 4.4 reports; `order_lifecycle`: one order's plan
  and when the market fills it;
- `tables`: the simulator's own Arrow tables (instruments, garbage, labels) for the Parquet
  files; `quality`: how well the tick filter separates faults from genuine ticks.
"""

from __future__ import annotations

from sources.synthetic.faults import EXECUTION_FAULTS, GARBAGE_VARIANTS, QUOTE_FAULTS, TRADE_FAULTS
from sources.synthetic.instruments import (
    SESSION_CLOSE_US,
    SESSION_OPEN_US,
    Instrument,
    make_instruments,
)
from sources.synthetic.labels import QUOTE_MAX_AGE_US, SEQ_WINDOW, Fault, Label, Reason
from sources.synthetic.market import Labels, Market
from sources.synthetic.order_lifecycle import Book as Book  # importable here, not in __all__
from sources.synthetic.orders import INF as INF  # (as before the split)
from sources.synthetic.orders import OrderSim as OrderSim
from sources.synthetic.records import (
    CODE_EXECUTION,
    CODE_GARBAGE,
    CODE_QUOTE,
    CODE_TRADE,
    HEADER_LEN,
    KIND_NAMES,
    TOPIC_EXECUTIONS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    TOPICS,
    Garbage,
    Record,
)
from sources.synthetic.spec import DEFAULT_START_US, MarketSpec
from sources.synthetic.tape import generate_market, paused_gc

__all__ = [
    "CODE_EXECUTION",
    "CODE_GARBAGE",
    "CODE_QUOTE",
    "CODE_TRADE",
    "DEFAULT_START_US",
    "EXECUTION_FAULTS",
    "GARBAGE_VARIANTS",
    "HEADER_LEN",
    "KIND_NAMES",
    "QUOTE_FAULTS",
    "QUOTE_MAX_AGE_US",
    "SEQ_WINDOW",
    "SESSION_CLOSE_US",
    "SESSION_OPEN_US",
    "TOPICS",
    "TOPIC_EXECUTIONS",
    "TOPIC_QUOTES",
    "TOPIC_TRADES",
    "TRADE_FAULTS",
    "Fault",
    "Garbage",
    "Instrument",
    "Label",
    "Labels",
    "Market",
    "MarketSpec",
    "Reason",
    "Record",
    "generate_market",
    "make_instruments",
    "paused_gc",
]
