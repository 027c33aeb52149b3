"""Candles over a whole sequence at once: backfill, tests, and reading back final versions."""

from __future__ import annotations

from collections.abc import Iterable

from tapeflow.core.market.candles import (
    DEFAULT_CANDLE_CONFIG,
    Candle,
    CandleConfig,
    CandleState,
    add_trade_inplace,
    flush_inplace,
)
from tapeflow.core.market.conditions import (
    DEFAULT_CONDITION_RULES,
    NO_EFFECT,
    REGULAR,
    ConditionRules,
)
from tapeflow.core.market.rejections import Rejection
from tapeflow.core.models import Trade


def build_candles(
    trades: Iterable[Trade], config: CandleConfig = DEFAULT_CANDLE_CONFIG,
    conditions: ConditionRules = DEFAULT_CONDITION_RULES,
) -> tuple[list[Candle], list[Rejection]]:
    """Fold a whole sequence and flush_inplace: every emission (all versions) and the rejections.
    Each trade's effect comes from `conditions`, as in the stream (`symbol_step`)."""
    state = CandleState()
    candles: list[Candle] = []
    rejections: list[Rejection] = []
    for trade in trades:
        effect = conditions.effect(trade.venue, trade.conditions) if trade.conditions else REGULAR
        if effect == NO_EFFECT:
            continue
        state, emitted, rejection = add_trade_inplace(state, trade, None, config, effect)
        if emitted:
            candles.extend(emitted)
        if rejection is not None:
            rejections.append(rejection)
    state, emitted = flush_inplace(state)
    candles.extend(emitted)
    return candles, rejections


def final_candles(candles: Iterable[Candle]) -> list[Candle]:
    """The highest version of each (symbol, width, bucket), as a ReplacingMergeTree keeps it.

    Versions are trade counts, so emissions with equal versions are identical; ties keep the
    later one.
    """
    best: dict[tuple[str, int, int], Candle] = {}
    for c in candles:
        key = (c.symbol, c.width_us, c.bucket)
        prev = best.get(key)
        if prev is None or c.version >= prev.version:
            best[key] = c
    return [best[k] for k in sorted(best)]
