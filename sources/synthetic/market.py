"""`Market`, the result of a generation run: every record in arrival order, and its truth.

Why labels are not stored one per record: a market of millions of records has few faults, so
only the faulty positions keep a `Label` (`Market.faults`); the clean ones are built on demand
from the record itself (`Labels`, a full sequence aligned with `Market.stream()`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload

from sources.synthetic.instruments import Instrument
from sources.synthetic.labels import Fault, Label
from sources.synthetic.records import (
    CODE_EXECUTION,
    CODE_QUOTE,
    CODE_TRADE,
    KIND_NAMES,
    TOPIC_EXECUTIONS,
    TOPICS,
    Garbage,
    Record,
)
from sources.synthetic.spec import MarketSpec
from tapeflow.core.models import ExecutionReport, Quote, Trade


class Market:
    """The output of `generate_market`: records in arrival order and their truth.

    `trades`, `quotes`, `executions` and `garbage` each hold that kind in arrival order.
    `codes[pos]` (0 trade, 1 quote, 2 execution, 3 garbage) and `rows[pos]` say where stream
    position `pos` lives; `faults` holds the labels of non-clean positions (clean labels are
    built on demand by `labels`, which is a full `Sequence[Label]` aligned with `stream()`).
    """

    def __init__(
        self,
        *,
        spec: MarketSpec,
        instruments: tuple[Instrument, ...],
        trades: list[Trade],
        quotes: list[Quote],
        executions: list[ExecutionReport],
        garbage: list[Garbage],
        codes: bytearray,
        rows: array[int],
        faults: dict[int, Label],
        orders_created: int,
    ) -> None:
        self.spec = spec
        self.instruments = instruments
        self.trades = trades
        self.quotes = quotes
        self.executions = executions
        self.garbage = garbage
        self.codes = codes
        self.rows = rows
        self.faults = faults
        self.orders_created = orders_created

    def __len__(self) -> int:
        return len(self.codes)

    def record(self, pos: int) -> Record | Garbage:
        code = self.codes[pos]
        row = self.rows[pos]
        if code == CODE_TRADE:
            return self.trades[row]
        if code == CODE_QUOTE:
            return self.quotes[row]
        if code == CODE_EXECUTION:
            return self.executions[row]
        return self.garbage[row]

    def stream(self) -> Iterator[tuple[str, str, Record | Garbage]]:
        """(topic, key, value) in arrival order: what to produce, one message each."""
        lists: tuple[Sequence[Record | Garbage], ...] = (
            self.trades,
            self.quotes,
            self.executions,
            self.garbage,
        )
        for code, row in zip(self.codes, self.rows, strict=True):
            value = lists[code][row]
            if code <= CODE_QUOTE:
                yield TOPICS[code], value.symbol, value  # type: ignore[union-attr]
            elif code == CODE_EXECUTION:
                yield TOPIC_EXECUTIONS, value.account_id, value  # type: ignore[union-attr]
            else:
                yield value.topic, value.key, value  # type: ignore[union-attr]

    @property
    def labels(self) -> Labels:
        return Labels(self)

    def label(self, pos: int) -> Label:
        found = self.faults.get(pos)
        if found is not None:
            return found
        return _clean_label(pos, self.codes[pos], self.rows[pos], self.record(pos))  # type: ignore[arg-type]

    def fault_labels(self) -> list[Label]:
        return [self.faults[pos] for pos in sorted(self.faults)]

    def summary(self) -> dict[str, int]:
        """Counts by kind and by fault, for logs and the CLI."""
        out = {
            "records": len(self.codes),
            "trades": len(self.trades),
            "quotes": len(self.quotes),
            "executions": len(self.executions),
            "garbage": len(self.garbage),
            "orders": self.orders_created,
            "faults": len(self.faults),
        }
        for fault in Fault:
            if fault is not Fault.CLEAN:
                out[f"fault.{fault.value}"] = 0
        for lab in self.faults.values():  # feed effects (`feed_effects`) are counted too
            out[f"fault.{lab.fault}"] = out.get(f"fault.{lab.fault}", 0) + 1
        return out


def _clean_label(pos: int, code: int, row: int, rec: Record) -> Label:
    if code == CODE_EXECUTION:
        er: ExecutionReport = rec  # type: ignore[assignment]
        return Label(
            pos, TOPIC_EXECUTIONS, row, "execution", "clean", None, er.symbol, None, None,
            er.ts_event, er.account_id,
        )  # fmt: skip
    tick: Trade | Quote = rec  # type: ignore[assignment]
    return Label(
        pos, TOPICS[code], row, KIND_NAMES[code], "clean", None, tick.symbol, tick.venue,
        tick.seq, tick.ts_event, tick.symbol,
    )  # fmt: skip


class Labels(Sequence[Label]):
    """All labels of a market, position by position, built lazily."""

    def __init__(self, market: Market) -> None:
        self._m = market

    def __len__(self) -> int:
        return len(self._m.codes)

    @overload
    def __getitem__(self, index: int) -> Label: ...
    @overload
    def __getitem__(self, index: slice) -> list[Label]: ...
    def __getitem__(self, index: int | slice) -> Label | list[Label]:
        if isinstance(index, slice):
            return [self._m.label(i) for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self._m.label(index)

    def __iter__(self) -> Iterator[Label]:
        m = self._m
        faults = m.faults
        lists: tuple[Sequence[Record | Garbage], ...] = (m.trades, m.quotes, m.executions, [])
        for pos, (code, row) in enumerate(zip(m.codes, m.rows, strict=True)):
            found = faults.get(pos)
            yield found if found is not None else _clean_label(pos, code, row, lists[code][row])  # type: ignore[arg-type]
