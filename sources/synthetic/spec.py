"""`MarketSpec`: everything a synthetic market depends on, and nothing else.

The spec is the only input of `generate_market`: the same spec gives the same market on every
run. It also hands out the random generators, one per concern, seeded from a string (stable
across runs, whatever PYTHONHASHSEED), so that for example the order flow never changes the
tape.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from random import Random

DEFAULT_START_US = 1_767_623_400_000_000
"""2026-01-05T14:30:00Z: a Monday, the New York open (9:30 EST)."""


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Everything the generator depends on. Rates are market-wide averages per second of
    event time (bursts included); `duration_s` is event time; nothing reads a clock."""

    seed: int = 7
    n_symbols: int = 20
    n_accounts: int = 5
    start_us: int = DEFAULT_START_US
    duration_s: float = 600.0
    trade_rate: float = 100.0
    quote_rate: float = 300.0
    order_rate: float = 2.0
    fault_rate: float = 0.01
    venues: tuple[str, ...] = ("XNAS", "XNYS", "ARCX", "BATS")
    daily_vol: float = 0.02
    """Typical daily volatility of a symbol's mid (each symbol gets 0.5x to 1.5x of it)."""
    commission_bps: int = 1
    max_trades: int | None = None
    """Stop once this many trade events were generated (faulty ones included)."""

    def __post_init__(self) -> None:
        if not 1 <= self.n_symbols <= 999:
            raise ValueError("n_symbols must be between 1 and 999")
        if self.n_accounts < 0:
            raise ValueError("n_accounts must not be negative")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        if self.trade_rate <= 0 or self.quote_rate <= 0 or self.order_rate < 0:
            raise ValueError("trade_rate and quote_rate must be positive, order_rate >= 0")
        if not 0.0 <= self.fault_rate <= 0.5:
            raise ValueError("fault_rate must be between 0 and 0.5")
        if not self.venues or len(set(self.venues)) != len(self.venues):
            raise ValueError("venues must be a non-empty tuple of distinct names")
        if not 0.0 < self.daily_vol < 0.5:
            raise ValueError("daily_vol must be between 0 and 0.5")
        if self.max_trades is not None and self.max_trades < 0:
            raise ValueError("max_trades must not be negative")
        object.__setattr__(self, "venues", tuple(self.venues))

    @property
    def end_us(self) -> int:
        return self.start_us + round(self.duration_s * 1e6)

    @property
    def run_tag(self) -> str:
        """Six hex digits naming what the order flow depends on; prefixes order ids."""
        text = repr(
            (
                self.seed,
                self.n_symbols,
                self.n_accounts,
                self.start_us,
                self.trade_rate,
                self.quote_rate,
                self.order_rate,
                self.venues,
                self.daily_vol,
                self.commission_bps,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:6]

    def rng(self, purpose: str) -> Random:
        """An independent generator per concern (seeding from a str is stable across runs)."""
        return Random(f"tapeflow/{self.seed}/{purpose}")
