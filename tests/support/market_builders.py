"""Small builders for market-data tests: trades and quotes in readable units."""

from __future__ import annotations

import itertools
from decimal import Decimal

from tapeflow.core.fixedpoint import ONE, to_units
from tapeflow.core.models import Quote, Trade

T0 = 1_767_623_400_000_000  # 2026-01-05T14:30:00Z in microseconds
S = 1_000_000  # one second in microseconds

_seq = itertools.count(1)


def px(value: str | int | Decimal) -> int:
    """'100.01' -> scale-8 units."""
    return to_units(Decimal(value))


def trade(
    price: str | int,
    *,
    ts: int = T0,
    seq: int | None = None,
    size: str | int = 1,
    symbol: str = "AAA",
    venue: str = "XNAS",
) -> Trade:
    return Trade(symbol, venue, ts, next(_seq) if seq is None else seq, px(price), px(size))


def quote(
    bid: str | int,
    ask: str | int,
    *,
    ts: int = T0,
    seq: int | None = None,
    bid_sz: str | int = 1,
    ask_sz: str | int = 1,
    symbol: str = "AAA",
    venue: str = "XNAS",
) -> Quote:
    return Quote(
        symbol,
        venue,
        ts,
        next(_seq) if seq is None else seq,
        px(bid),
        px(bid_sz),
        px(ask),
        px(ask_sz),
    )


def trades_at(prices: list[str], *, start_seq: int, ts: int = T0, **kw: object) -> list[Trade]:
    """Consecutive trades, one microsecond apart, consecutive sequence numbers."""
    return [
        trade(p, ts=ts + i, seq=start_seq + i, **kw)  # type: ignore[arg-type]
        for i, p in enumerate(prices)
    ]


def quotes_at(
    pairs: list[tuple[str, str]], *, start_seq: int, ts: int = T0, **kw: object
) -> list[Quote]:
    return [
        quote(b, a, ts=ts + i, seq=start_seq + i, **kw)  # type: ignore[arg-type]
        for i, (b, a) in enumerate(pairs)
    ]


__all__ = ["ONE", "T0", "S", "px", "quote", "quotes_at", "trade", "trades_at"]
