"""Results never depend on batch boundaries: the same tape, cut into batches of 1, 7, 1,000
messages, into random sizes, or left whole, gives identical clean ticks, rejections, candles,
marks and dead letters through the market flow's batch step.

The step is the flow's: `flows.market_logic.TickBatchDecoder` (Avro blocks for every batch of
32 frames or more, `min_block=32`, frame by frame below) then
`flows.market_logic.PartitionLogic` (the per-symbol core behind the thin adapter), then the end
of input. The wall clock is out of play, as in the
determinism tests of the core: a fixed wall time and no wake-up, so nothing is released by
quiet time (the merge waits as a batch run's does). The tape is a generated market with every
labelled fault kind (the test checks they are all there) on one partition of md.trades and
md.quotes, each kind's batches cut from its own messages and handed over in arrival order of
their first message, as polls of two partitions would be.

Phase 1 steps the per-tick core, so boundaries cannot matter by construction; this is the
harness a columnar per-symbol core (phase 2 of issue #11) must pass too.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.market_logic import PartitionLogic, PartitionOut, TickBatchDecoder
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sources.synthetic import Garbage, MarketSpec, generate_market
from sources.synthetic.labels import Fault
from tapeflow.core.market.symbol_step import MarketConfig
from tests.support.message_batches import Message, batches

CODEC = Codec(LocalCatalogue.load())
TRADES, QUOTES = "p.md.trades", "p.md.quotes"
MARKET = generate_market(MarketSpec(seed=17, n_symbols=5, duration_s=20.0, fault_rate=0.06,
                                    n_accounts=0))
CONFIG = MarketConfig(merge_max_wait_us=3_600_000_000)
"""A batch run's merge: the end of input releases everything in merge order."""
WALL_US = 1_900_000_000_000_000


def _tape() -> list[Message]:
    out: list[Message] = []
    offsets = {TRADES: 0, QUOTES: 0}
    labels = MARKET.labels
    for pos, (topic, key, record) in enumerate(MARKET.stream()):
        if not topic.startswith("md."):
            continue
        full = TRADES if topic.endswith("trades") else QUOTES
        value = (record.frame(CODEC.encode) if isinstance(record, Garbage)
                 else CODEC.encode(record))
        label = labels[pos]
        recv = label.ts_event + (label.delay_us or 0) + 2_000
        out.append(Message(full, 0, offsets[full], key.encode(), value, recv))
        offsets[full] += 1
    return out


TAPE = _tape()


def _cut(sizes: list[int]) -> list[Any]:
    """Each topic's messages cut into consecutive batches of the given sizes (cycled), the
    batches of both topics in arrival order of their first message."""
    position = {(m.topic, m.offset): i for i, m in enumerate(TAPE)}
    out = []
    for topic in (TRADES, QUOTES):
        msgs = [m for m in TAPE if m.topic == topic]
        at, k = 0, 0
        while at < len(msgs):
            size = sizes[k % len(sizes)]
            out.extend(batches(msgs[at:at + size], size=size))
            at, k = at + size, k + 1
    return sorted(out, key=lambda b: position[(b.topic, b.offsets[0])])


def _run(cut: list[Any]) -> dict[str, Any]:
    decoder = TickBatchDecoder(CODEC, {TRADES: "Trade", QUOTES: "Quote"}, min_block=32)
    logic = PartitionLogic(CONFIG, None, wall_us=lambda: WALL_US)
    outs: list[PartitionOut] = []
    letters = []
    for batch in cut:
        ticks, dead = decoder(batch)
        letters.extend(dead)
        if ticks is not None:
            out, _ = logic.on_batch([ticks])
            outs.extend(out)
    out, _ = logic.on_eof()
    outs.extend(out)
    marks: dict[str, list[Any]] = {}
    for part in outs:
        for mark in part.marks:
            marks.setdefault(mark.symbol, []).append(mark)
        letters.extend(part.letters)
    records = [r for part in outs for r in part.records]
    return {
        "records": Counter(records),
        "marks": marks,  # per symbol, in the order sent
        "gaps": Counter(g for part in outs for g in part.gaps),
        "letters": Counter(letters),
        "counts": (len(records), sum(map(len, marks.values())), len(letters)),
    }


REFERENCE = _run(_cut([len(TAPE)]))


def test_the_tape_has_every_fault_kind_and_every_output() -> None:
    faults = {MARKET.labels[pos].fault for pos in MARKET.faults}
    assert faults >= {f.value for f in Fault} - {"clean", "duplicate_exec"}
    _, marks, letters = REFERENCE["counts"]
    kinds = {type(r).__name__ for r in REFERENCE["records"]}
    assert kinds == {"Trade", "Quote", "Rejection", "Candle"}
    assert marks and letters and REFERENCE["gaps"]


def test_batches_of_1_7_and_1000_equal_the_whole_tape() -> None:
    for size in (1, 7, 1000):
        got = _run(_cut([size]))
        for name, want in REFERENCE.items():
            assert got[name] == want, (size, name)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=6), st.integers(0, 2**32))
def test_random_cuts_equal_the_whole_tape(sizes: list[int], seed: int) -> None:
    sizes = random.Random(seed).sample(sizes, len(sizes))
    got = _run(_cut(sizes))
    for name, want in REFERENCE.items():
        assert got[name] == want, (sizes, name)
