"""Trade conditions: which prints set the price of a candle and the mark, and which count volume.

A print on the US consolidated tape carries sale conditions, and the tape's plans (CTA for
NYSE-listed, UTP for Nasdaq-listed securities) say for each condition whether the print may
update the consolidated last sale (and high/low) and the volume. A late report, a print out of
sequence, an odd lot or an average-price trade did happen and counts as volume, but its price is
not where the market is: it must not become a candle's open, high, low or close, nor a mark.

Tapeflow's decision per print, from its conditions:

- `REGULAR`: sets open/high/low/close (and may become the mark) and counts volume, notional and
  trade count;
- `VOLUME_ONLY`: counts volume, notional and trade count only;
- `NO_EFFECT`: neither (official open and close reports, corrected closes): a clean trade, stored
  with the trades, folded into no candle and never a mark.

A print with several conditions takes the most restrictive one (each condition can only take
effects away); a print without conditions is regular. A condition code a table does not know
is taken as `ConditionTable.unknown` (regular by default: a venue's own code for a regular
print must not lose prices; map the venue's codes in its own table).

Price-only prints (a price without volume) are not offered: a candle's vwap needs volume, and the
one such code in the plans (`9`, a corrected consolidated close) is a correction of the close,
not a print.

**The default table** (`DEFAULT_CONDITION_TABLE`) follows the UTP Trade Data Feed's sale-condition
processing guidelines for consolidated data (the update matrix of the UTDF specification; CTA
uses the same codes and the same eligibility for them), column "update last" for the price and
"update volume" for the volume:

- regular: `@` regular, `A` acquisition, `B` bunched, `D` distribution, `F` intermarket
  sweep, `K` rule 155, `L` sold last (a late report, in sequence), `O` opening prints,
  `S` split, `X` cross, `Y` yellow flag, `1` stopped stock, `2` stopped stock sold last,
  `5` re-opening prints, `6` closing prints;
- volume only: `C` cash, `G` bunched sold, `H` price variation, `I` odd lot, `N` next day,
  `P` prior reference price, `R` seller, `T` form T (extended hours), `U` extended hours sold
  out of sequence, `V` contingent, `W` average price, `Z` sold out of sequence, `3` stopped
  stock sold out of sequence, `4` derivatively priced, `7` qualified contingent;
- no effect: `M` market center official close, `Q` market center official open, `9` corrected
  consolidated close.

Two simplifications, both towards fewer prices: the plans let `G`, `P`, `R`, `Z` and `4` update
high and low (not last), and update last when the print is the first last-sale-eligible print of
the day; Tapeflow's candles have one price flag per print and no trading-day state, so these set
no price. A feed with other codes (a futures venue, a crypto exchange) gets its own table
(`ConditionRules.venues`); tables are data, not code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

NO_EFFECT: Final = 0
VOLUME_ONLY: Final = 1
REGULAR: Final = 3
"""Bit 1: counts volume; bit 2: sets prices. The effect of several conditions is their AND."""
PRICE_BIT: Final = 2

EFFECT_NAMES: Mapping[str, int] = {"regular": REGULAR, "volume_only": VOLUME_ONLY,
                                   "no_effect": NO_EFFECT}
"""Names of the effects in condition-table files (settings)."""


def _table(regular: str, volume_only: str, no_effect: str) -> dict[str, int]:
    out = dict.fromkeys(regular.split(), REGULAR)
    out.update(dict.fromkeys(volume_only.split(), VOLUME_ONLY))
    out.update(dict.fromkeys(no_effect.split(), NO_EFFECT))
    return out


DEFAULT_CODES: Mapping[str, int] = _table(
    regular="@ A B D F K L O S X Y 1 2 5 6",
    volume_only="C G H I N P R T U V W Z 3 4 7",
    no_effect="M Q 9",
)


@dataclass(frozen=True, slots=True)
class ConditionTable:
    """Condition code -> effect (`REGULAR`, `VOLUME_ONLY`, `NO_EFFECT`) for one feed."""

    codes: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CODES), hash=False)
    unknown: int = REGULAR
    """The effect of a code not in `codes`."""

    def __post_init__(self) -> None:
        for code, effect in (*self.codes.items(), ("(unknown)", self.unknown)):
            if effect not in (REGULAR, VOLUME_ONLY, NO_EFFECT):
                raise ValueError(f"condition {code!r}: effect must be regular, volume_only or "
                                 "no_effect (a price without volume has no vwap)")
        object.__setattr__(self, "codes", dict(self.codes))

    def effect(self, conditions: tuple[str, ...]) -> int:
        out = REGULAR
        codes = self.codes
        unknown = self.unknown
        for code in conditions:
            out &= codes.get(code, unknown)
        return out


DEFAULT_CONDITION_TABLE = ConditionTable()


@dataclass(frozen=True, slots=True)
class ConditionRules:
    """The condition table of every venue: `venues[venue]`, else `default`."""

    default: ConditionTable = DEFAULT_CONDITION_TABLE
    venues: Mapping[str, ConditionTable] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "venues", dict(self.venues))

    def effect(self, venue: str, conditions: tuple[str, ...]) -> int:
        """The effect of a print with these conditions on this venue."""
        if not conditions:
            return REGULAR
        return self.venues.get(venue, self.default).effect(conditions)


DEFAULT_CONDITION_RULES = ConditionRules()
