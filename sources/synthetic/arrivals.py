"""The stream under construction: records appended in arrival order, faults labelled on the way.

Every part of the simulator writes through here (the tape, the fault injection, held-back
records, the order flow), so the stream positions, the per-kind rows and the fault labels
cannot disagree. The tape's hot loop appends clean ticks to these lists directly (it binds
`codes.append`, `rows.append` and the list appends once), and leaves everything else to
`append` and `emit_fault`.
"""

from __future__ import annotations

from array import array

from sources.synthetic.instruments import Instrument
from sources.synthetic.labels import Fault, Label
from sources.synthetic.market import Market
from sources.synthetic.records import (
    CODE_EXECUTION,
    KIND_NAMES,
    TOPIC_EXECUTIONS,
    TOPICS,
    Garbage,
    Record,
)
from sources.synthetic.spec import MarketSpec
from tapeflow.core.models import ExecutionReport, Quote, Trade


class Arrivals:
    """Per-kind lists in arrival order, with `codes`/`rows` mapping stream positions to them."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.quotes: list[Quote] = []
        self.executions: list[ExecutionReport] = []
        self.garbage: list[Garbage] = []
        self.codes = bytearray()
        self.rows: array[int] = array("q")
        self.faults: dict[int, Label] = {}

    def append(self, code: int, rec: Record | Garbage) -> int:
        """Append one record of kind `code`; returns its stream position."""
        pos = len(self.codes)
        self.codes.append(code)
        lists = (self.trades, self.quotes, self.executions, self.garbage)
        lst: list[Record | Garbage] = lists[code]  # type: ignore[assignment]
        self.rows.append(len(lst))
        lst.append(rec)
        return pos

    def emit_fault(
        self,
        code: int,
        rec: Record,
        fault: Fault,
        reason: str | None,
        *,
        ref_pos: int | None = None,
        delay_us: int | None = None,
        magnitude: int | None = None,
        field: str | None = None,
        original: int | None = None,
    ) -> int:
        """Append a faulty (or late) record with its label; returns its stream position."""
        pos = self.append(code, rec)
        row = self.rows[pos]
        if code == CODE_EXECUTION:
            er: ExecutionReport = rec  # type: ignore[assignment]
            label = Label(
                pos, TOPIC_EXECUTIONS, row, "execution", fault.value, reason, er.symbol, None,
                None, er.ts_event, er.account_id, ref_pos, delay_us, magnitude, field, original,
            )  # fmt: skip
        else:
            tick: Trade | Quote = rec  # type: ignore[assignment]
            label = Label(
                pos, TOPICS[code], row, KIND_NAMES[code], fault.value, reason, tick.symbol,
                tick.venue, tick.seq, tick.ts_event, tick.symbol, ref_pos, delay_us, magnitude,
                field, original,
            )  # fmt: skip
        self.faults[pos] = label
        return pos

    def market(
        self, spec: MarketSpec, instruments: tuple[Instrument, ...], orders_created: int
    ) -> Market:
        """The finished stream as a `Market` (the lists are handed over, not copied)."""
        return Market(
            spec=spec,
            instruments=instruments,
            trades=self.trades,
            quotes=self.quotes,
            executions=self.executions,
            garbage=self.garbage,
            codes=self.codes,
            rows=self.rows,
            faults=self.faults,
            orders_created=orders_created,
        )
