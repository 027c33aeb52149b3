"""What the codec's edge checks cost per decoded frame (timestamps in 1900..2299, identifiers and
tick symbols and venues <= 256 bytes, no NUL in any text; docs/bad-input.md).

Decodes the same frames with the checks on (as shipped) and off (the checks' field lists
emptied: the baseline), alternating rounds in one process, and prints the median microseconds
per frame of each.

    uv run python bench/codec_checks.py [--frames 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sources.synthetic import MarketSpec, generate_market


def _per_frame_us(codec: Codec, frames: list[bytes]) -> float:
    decode = codec.decode
    started = time.perf_counter()
    for frame in frames:
        decode(frame)
    return (time.perf_counter() - started) / len(frames) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    market = generate_market(MarketSpec(seed=1, n_symbols=20, duration_s=120.0, order_rate=50.0,
                                        fault_rate=0.0))
    checked, baseline = Codec(LocalCatalogue.load()), Codec(LocalCatalogue.load())
    for rc in baseline._records.values():
        rc.timestamp_fields, rc.id_fields = [], []
        rc.text_fields, rc.text_array_fields = [], []
    for name, records in (("Trade", market.trades), ("Quote", market.quotes),
                          ("ExecutionReport", market.executions)):
        frames = [checked.encode(r) for r in records[: args.frames]]
        on, off = [], []
        for _ in range(args.rounds):
            off.append(_per_frame_us(baseline, frames))
            on.append(_per_frame_us(checked, frames))
        print(f"{name:16s} {len(frames):6d} frames: checks on {statistics.median(on):.2f} us, "
              f"off {statistics.median(off):.2f} us per frame "
              f"({statistics.median(on) / statistics.median(off):.2f}x)")


if __name__ == "__main__":
    main()
