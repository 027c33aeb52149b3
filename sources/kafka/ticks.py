"""md.trades / md.quotes batches into the core: decoded columns, then each symbol's arrivals.

Two steps, so the second can be swapped without touching the first:

- `decode_ticks`: a `MessageBatch` (one poll of one partition) -> a `TickBatch`, the decoded
  ticks as columns in core units (integer microseconds, integer scale-8 prices and sizes)
  with each tick's offset and receive time, plus the frames that did not decode. The decoding is
  `schemas.batch_decode` (one Avro block per batch where possible, the codec frame by frame
  where not), so the records and reasons are those of the codec.
- `symbol_arrivals`: a `TickBatch` -> each symbol's ticks in arrival order as the per-tick
  core values the per-symbol step takes today (`tapeflow.core.market.symbol_step.Arrival`).
  This is the thin adapter between columns and the per-tick core; a columnar per-symbol core
  would take each symbol's slice of the columns instead, and only this function changes.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, NamedTuple

from schemas.batch_decode import MIN_BLOCK, decode_batch
from schemas.codec import Codec, DecodeError
from sources.kafka.flow_source import MessageBatch
from tapeflow.core.market.symbol_step import Arrival
from tapeflow.core.models import Quote, Trade

_new_tuple = tuple.__new__


class TickBatch(NamedTuple):
    """The decoded ticks of one poll of one md.trades or md.quotes partition, as columns."""

    kind: str
    """The record: "Trade" or "Quote"."""
    topic: str
    partition: int
    columns: dict[str, list[Any]]
    """Each field of the record in core units (integer microseconds, integer scale-8 prices
    and sizes), in offset order."""
    offsets: list[int]
    recv_us: list[int | None]
    """The Kafka timestamp of each tick in microseconds (None: unknown)."""

    def __len__(self) -> int:
        return len(self.offsets)


def decode_ticks(codec: Codec, batch: MessageBatch, kind: str, *,
                 min_block: int = MIN_BLOCK) -> tuple[TickBatch, list[tuple[int, DecodeError]]]:
    """The decoded ticks of `batch` and (position in the batch, why) of each frame that did
    not decode. Raises nothing for bad input (every failure is in the list)."""
    decoded = decode_batch(codec, batch.values, kind, min_block=min_block)
    offsets, recv = batch.offsets, batch.recv_us
    if len(decoded) == len(batch):
        ticks = TickBatch(kind, batch.topic, batch.partition, decoded.columns, offsets, recv)
    else:
        ticks = TickBatch(kind, batch.topic, batch.partition, decoded.columns,
                          [offsets[i] for i in decoded.rows], [recv[i] for i in decoded.rows])
    return ticks, decoded.failures


def _ticks(batch: TickBatch) -> list[Trade] | list[Quote]:
    cols = batch.columns
    if batch.kind == "Trade":
        conditions = [c if type(c) is tuple else tuple(c) for c in cols["conditions"]]
        fields = [cols[name] for name in Trade._fields[:7]]
        return list(map(_new_tuple, repeat(Trade), zip(*fields, conditions, strict=True)))
    fields = [cols[name] for name in Quote._fields]
    return list(map(_new_tuple, repeat(Quote), zip(*fields, strict=True)))


def symbol_arrivals(batch: TickBatch) -> dict[str, list[Arrival]]:
    """Each symbol's ticks of `batch`, in arrival (offset) order, as core arrivals: the tick,
    its receive time and its origin (topic, partition, offset)."""
    ticks = _ticks(batch)
    origins = zip(repeat(batch.topic), repeat(batch.partition), batch.offsets)
    arrivals = map(_new_tuple, repeat(Arrival), zip(ticks, batch.recv_us, origins, strict=True))
    out: dict[str, list[Arrival]] = {}
    for symbol, arrival in zip(batch.columns["symbol"], arrivals, strict=True):
        runs = out.get(symbol)
        if runs is None:
            out[symbol] = [arrival]
        else:
            runs.append(arrival)
    return out
