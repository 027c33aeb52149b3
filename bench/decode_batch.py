"""Decoding alone: the batch decoder against fastavro and the codec, on the same frames.

Not a test: a measurement. Encodes synthetic trades and quotes (Confluent-framed Avro, as on the
wire), cuts them into batches of `--batch` frames (what one poll of a partition gives the
market flow), and decodes every batch, in alternating rounds, with:

- batch decoder: `schemas.batch_decode.decode_batch` (headers stripped, one in-memory Avro
  block per schema id read by `polars.read_avro`, the exactness checks, columns of core units
  as Python lists, what the per-tick core of phase 1 takes: what the market flow uses);
- block + checks: `schemas.batch_reader.read_block`, the same without the lists (polars
  columns: what a columnar core would take);
- polars block only: `polars.read_avro` of the same blocks without the checks or the lists
  (the bound the checks are paid from; not usable alone, see schemas/batch_reader.py);
- codec one by one: `Codec.decode` per frame (the compiled reader of schemas/fast_reader.py:
  the flow's decoder before batches, and its fallback);
- fastavro one by one: `fastavro.schemaless_reader` per frame with the logical types (Decimal,
  datetime), the plain way to decode these frames in Python.

Prints frames per second, median of the rounds, CPU time of this process.

Run:  uv run python bench/decode_batch.py [--frames 200000] [--batch 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable, Sequence

import fastavro
import polars as pl

from schemas.batch_decode import decode_batch
from schemas.batch_reader import container, read_block
from schemas.catalogue import LocalCatalogue, current_schema
from schemas.codec import Codec
from sources.synthetic import MarketSpec, generate_market


def _rate(fn: Callable[[Sequence[bytes]], object], batches: list[list[bytes]]) -> float:
    started = time.process_time()
    for batch in batches:
        fn(batch)
    return sum(map(len, batches)) / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    codec = Codec(LocalCatalogue.load())
    seconds = max(5.0, args.frames / 3_000 * 1.1)  # enough trades (3,000/s; quotes 9,000/s)
    market = generate_market(MarketSpec(seed=1, n_symbols=120, duration_s=seconds,
                                        trade_rate=3000.0, quote_rate=9000.0, fault_rate=0.0,
                                        n_accounts=0))
    for record, records in (("Trade", market.trades), ("Quote", market.quotes)):
        frames = [codec.encode(r) for r in records[: args.frames]]
        batches = [frames[i:i + args.batch] for i in range(0, len(frames), args.batch)]
        schema = current_schema(record)
        parsed = fastavro.parse_schema(schema)

        def fastavro_each(batch: Sequence[bytes], parsed: object = parsed) -> None:
            for frame in batch:
                buf = io.BytesIO(frame)
                buf.seek(5)
                fastavro.schemaless_reader(buf, parsed, None)

        def polars_only(batch: Sequence[bytes], schema: dict[str, object] = schema) -> None:
            pl.read_avro(io.BytesIO(container(schema, [f[5:] for f in batch])))

        def checked(batch: Sequence[bytes], schema: dict[str, object] = schema) -> None:
            read_block(schema, [f[5:] for f in batch])

        ways: dict[str, Callable[[Sequence[bytes]], object]] = {
            "batch decoder": lambda batch, record=record: decode_batch(codec, batch, record),
            "  block + checks": checked,
            "  polars block only": polars_only,
            "codec one by one": lambda batch, record=record: [
                codec.decode(f, expect=record) for f in batch],
            "fastavro one by one": fastavro_each,
        }
        rates: dict[str, list[float]] = {name: [] for name in ways}
        for fn in ways.values():  # warm up: schemas parsed, plans built
            fn(batches[0])
        for _ in range(args.rounds):
            for name, fn in ways.items():
                rates[name].append(_rate(fn, batches))
        print(f"{record}: {len(frames):,} frames in batches of {args.batch}")
        for name, values in rates.items():
            print(f"  {name:20} {statistics.median(values):12,.0f} frames/s "
                  f"({1e6 / statistics.median(values):6.2f} µs a frame)")


if __name__ == "__main__":
    main()
