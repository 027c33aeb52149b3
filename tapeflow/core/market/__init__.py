"""Market data: the causal tick filter, OHLCV candles and roll-ups, and the symbol step that
merges a symbol's trades and quotes and drives both (docs/market-core.md)."""

from tapeflow.core.market.candle_batch import build_candles, final_candles
from tapeflow.core.market.candles import (
    DEFAULT_CANDLE_CONFIG,
    HOUR_US,
    MINUTE_US,
    SECOND_US,
    Candle,
    CandleConfig,
    CandleState,
    add_trade_inplace,
    close_idle_inplace,
    flush_inplace,
)
from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.rejections import Rejection, RejectReason, SequenceGap, TickKind
from tapeflow.core.market.rollup import rollup
from tapeflow.core.market.symbol_step import (
    DEFAULT_MARKET_CONFIG,
    Arrival,
    MarketConfig,
    MarkTrade,
    Output,
    SymbolState,
    on_arrival_inplace,
    on_end_inplace,
    on_wall_clock_inplace,
)
from tapeflow.core.market.tick_filter import (
    Decision,
    filter_quote_inplace,
    filter_trade_inplace,
    run_filter,
)

__all__ = [
    "DEFAULT_CANDLE_CONFIG",
    "DEFAULT_FILTER_CONFIG",
    "DEFAULT_MARKET_CONFIG",
    "HOUR_US",
    "MINUTE_US",
    "SECOND_US",
    "Arrival",
    "Candle",
    "CandleConfig",
    "CandleState",
    "Decision",
    "FilterConfig",
    "FilterState",
    "MarkTrade",
    "MarketConfig",
    "Output",
    "RejectReason",
    "Rejection",
    "SequenceGap",
    "SymbolState",
    "TickKind",
    "add_trade_inplace",
    "build_candles",
    "close_idle_inplace",
    "filter_quote_inplace",
    "filter_trade_inplace",
    "final_candles",
    "flush_inplace",
    "on_arrival_inplace",
    "on_end_inplace",
    "on_wall_clock_inplace",
    "rollup",
    "run_filter",
]
