"""Reference data of the synthetic market: the instruments and their trading session.

The tape is drawn on each instrument's tick grid, in its lots, inside its price band; the
pipeline's tick filter is configured with the same list, so the two must come from here.
"""

from __future__ import annotations

from typing import NamedTuple

from sources.synthetic.spec import MarketSpec
from tapeflow.core.fixedpoint import ONE

SESSION_OPEN_US = (14 * 3600 + 30 * 60) * 1_000_000
SESSION_CLOSE_US = 21 * 3600 * 1_000_000


class Instrument(NamedTuple):
    """Reference data of one symbol. Prices and sizes scale-8 units; session times are
    microseconds since midnight UTC; the price band is `ref_price` +/- `price_band_pct` %."""

    symbol: str
    tick_size: int
    lot_size: int
    session_open: int
    session_close: int
    ref_price: int
    price_band_pct: int
    """Percent, scale-8 units (10 % = 10 * ONE), as the `instruments` table's price_band_pct."""

    @property
    def band_low(self) -> int:
        """Lowest price inside the band, on the tick grid."""
        width: int = self.ref_price * self.price_band_pct // (100 * ONE)
        low = self.ref_price - width
        return -(-low // self.tick_size) * self.tick_size

    @property
    def band_high(self) -> int:
        """Highest price inside the band, on the tick grid."""
        width: int = self.ref_price * self.price_band_pct // (100 * ONE)
        return (self.ref_price + width) // self.tick_size * self.tick_size


def make_instruments(spec: MarketSpec) -> tuple[Instrument, ...]:
    """The reference data: SYM001..SYMnnn, mostly 1-cent ticks and one-share lots, every
    tenth from the eighth a 5-cent board-lot name (lot 100), every tenth a sub-dollar name
    with a 0.0001 tick. US equity hours in UTC (14:30-21:00, winter), band +/- 10 %."""
    rng = spec.rng("instruments")
    out = []
    for i in range(spec.n_symbols):
        kind = i % 10
        if kind == 9:
            tick, lot, low, high = ONE // 10_000, ONE, 0.2, 0.99
        elif kind == 7:
            tick, lot, low, high = 5 * ONE // 100, 100 * ONE, 5.0, 50.0
        else:
            tick, lot, low, high = ONE // 100, ONE, 10.0, 500.0
        price = low * (high / low) ** rng.random()
        ref_ticks = max(1, round(price * ONE / tick))
        out.append(
            Instrument(
                symbol=f"SYM{i + 1:03d}",
                tick_size=tick,
                lot_size=lot,
                session_open=SESSION_OPEN_US,
                session_close=SESSION_CLOSE_US,
                ref_price=ref_ticks * tick,
                price_band_pct=10 * ONE,
            )
        )
    return tuple(out)
