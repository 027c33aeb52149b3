"""Trading: the FIX 4.4 order lifecycle, the order book, average-cost positions and P&L, the
account step (one account) and the shard step (the accounts of one executions partition), and
the replay behind reconciliation (docs/trading-core.md).

The risk rules (`tapeflow.core.risk`) read this package's state and the account step calls
them; the two import each other's modules, never each other's `__init__` first, so either can
be imported on its own.
"""

from tapeflow.core.trading.account_step import (
    TradingConfig,
    TradingOutput,
    TradingState,
    new_trading_state,
    on_cash,
    on_execution,
    on_mark,
    on_timer,
)
from tapeflow.core.trading.cash import CashOutcome, apply_cash
from tapeflow.core.trading.corrections import apply_correction
from tapeflow.core.trading.order_book import OrderBook, OrderRetention, apply_execution
from tapeflow.core.trading.orders import (
    Applied,
    Correction,
    Duplicate,
    Fill,
    Invalid,
    OrderState,
    transition,
)
from tapeflow.core.trading.positions import (
    AccountState,
    MarkPrice,
    Position,
    apply_fill,
    apply_mark,
    new_account,
)
from tapeflow.core.trading.shard_step import (
    DEFAULT_SHARD_CONFIG,
    CashResult,
    ExecutionResult,
    FeedGaps,
    PnlSnapshot,
    ShardConfig,
    ShardOutput,
    ShardState,
    StateChange,
    mark_of,
    on_cash_inplace,
    on_finish_inplace,
    on_gap,
    on_gap_timer,
    on_market_inplace,
    on_report_inplace,
    on_tick_inplace,
)

__all__ = [
    "DEFAULT_SHARD_CONFIG",
    "AccountState",
    "Applied",
    "CashOutcome",
    "CashResult",
    "Correction",
    "Duplicate",
    "ExecutionResult",
    "FeedGaps",
    "Fill",
    "Invalid",
    "MarkPrice",
    "OrderBook",
    "OrderRetention",
    "OrderState",
    "PnlSnapshot",
    "Position",
    "ShardConfig",
    "ShardOutput",
    "ShardState",
    "StateChange",
    "TradingConfig",
    "TradingOutput",
    "TradingState",
    "apply_cash",
    "apply_correction",
    "apply_execution",
    "apply_fill",
    "apply_mark",
    "mark_of",
    "new_account",
    "new_trading_state",
    "on_cash",
    "on_cash_inplace",
    "on_execution",
    "on_finish_inplace",
    "on_gap",
    "on_gap_timer",
    "on_mark",
    "on_market_inplace",
    "on_report_inplace",
    "on_tick_inplace",
    "on_timer",
    "transition",
]
