"""The synthetic market's faults: each is what its label says, and the tick filter agrees."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec, DecodeError
from sources.synthetic import (
    TOPIC_EXECUTIONS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    Fault,
    Garbage,
    Label,
    Market,
    Reason,
    generate_market,
)
from tapeflow.core.models import ExecutionReport, Quote, Trade
from tests.support.synthetic_spec import SPEC


@pytest.fixture(scope="module")
def market() -> Market:
    return generate_market(SPEC)


# -- faults and their labels ---------------------------------------------------------------


def _faults(market: Market, fault: Fault) -> list[Label]:
    found = [lab for lab in market.fault_labels() if lab.fault == fault]
    assert len(found) >= 5, f"too few {fault} to test"
    return found


def test_every_fault_kind_occurs(market: Market) -> None:
    kinds = {lab.fault for lab in market.fault_labels()}
    assert kinds == {f.value for f in Fault} - {"clean"}


def test_fault_rate_is_honoured(market: Market) -> None:
    share = len(market.faults) / len(market)
    assert 0.85 * SPEC.fault_rate < share < 1.1 * SPEC.fault_rate
    topic_of = {"trade": TOPIC_TRADES, "quote": TOPIC_QUOTES, "execution": TOPIC_EXECUTIONS}
    for kind in ("trade", "quote", "execution"):
        labels = [lab for lab in market.labels if lab.topic == topic_of[kind]]
        bad = sum(lab.fault != Fault.CLEAN for lab in labels)
        assert 0.6 * SPEC.fault_rate < bad / len(labels) < 1.4 * SPEC.fault_rate, kind


def test_fault_rate_zero_gives_a_clean_market() -> None:
    m = generate_market(replace(SPEC, fault_rate=0.0, duration_s=60.0))
    assert m.faults == {} and m.garbage == []
    assert all(lab.fault == "clean" and lab.expected_reason is None for lab in m.labels)


def _value(rec: Trade | Quote, lab: Label) -> int:
    assert lab.field is not None
    value = getattr(rec, lab.field)
    assert isinstance(value, int)
    return value


def test_zero_and_negative_values_are_what_their_labels_say(market: Market) -> None:
    for fault, reason in (
        (Fault.ZERO_PRICE, Reason.NON_POSITIVE_PRICE),
        (Fault.NEGATIVE_PRICE, Reason.NON_POSITIVE_PRICE),
        (Fault.ZERO_SIZE, Reason.NON_POSITIVE_SIZE),
        (Fault.NEGATIVE_SIZE, Reason.NON_POSITIVE_SIZE),
    ):
        for lab in _faults(market, fault):
            rec = market.record(lab.pos)
            assert isinstance(rec, Trade | Quote)
            assert lab.expected_reason == reason
            assert lab.original is not None and lab.original > 0
            value = _value(rec, lab)
            assert value == (0 if fault in (Fault.ZERO_PRICE, Fault.ZERO_SIZE) else -lab.original)
            if isinstance(rec, Trade):
                assert lab.field == ("price" if reason == Reason.NON_POSITIVE_PRICE else "size")
            else:
                assert lab.field in (("bid_px", "ask_px") if reason == Reason.NON_POSITIVE_PRICE
                                     else ("bid_sz", "ask_sz"))  # fmt: skip
    zero_trades = [lab for lab in market.fault_labels()
                   if lab.fault == Fault.ZERO_PRICE and lab.kind == "trade"]  # fmt: skip
    assert zero_trades and all(market.record(lab.pos).price == 0 for lab in zero_trades)  # type: ignore[union-attr]


def test_crossed_quotes_are_crossed(market: Market) -> None:
    for lab in _faults(market, Fault.CROSSED_QUOTE):
        q = market.record(lab.pos)
        assert isinstance(q, Quote)
        assert q.bid_px > q.ask_px > 0
        assert lab.expected_reason == Reason.CROSSED_QUOTE
    clean = [market.record(lab.pos) for lab in market.labels[:50_000]
             if lab.kind == "quote" and lab.fault == Fault.CLEAN]  # fmt: skip
    assert all(q.bid_px < q.ask_px for q in clean)  # type: ignore[union-attr]


def test_price_spikes_are_at_least_one_percent_away_and_on_the_grid(market: Market) -> None:
    ins = {i.symbol: i for i in market.instruments}
    magnitudes = set()
    for lab in _faults(market, Fault.PRICE_SPIKE):
        t = market.record(lab.pos)
        assert isinstance(t, Trade) and lab.original is not None and lab.magnitude_bps
        assert t.price > 0 and t.price % ins[t.symbol].tick_size == 0
        move = t.price - lab.original
        assert abs(move) * 100 >= lab.original  # >= 1 %
        assert abs(move) >= 40 * ins[t.symbol].tick_size
        assert (move > 0) == (lab.magnitude_bps > 0)
        assert lab.expected_reason in (Reason.OUTSIDE_QUOTE, Reason.PRICE_OUTLIER)
        magnitudes.add(abs(lab.magnitude_bps))
    assert len(magnitudes) >= 4


def test_duplicates_repeat_an_earlier_record_exactly(market: Market) -> None:
    for lab in _faults(market, Fault.DUPLICATE_SEQ):
        assert lab.ref_pos is not None and lab.ref_pos < lab.pos
        original = market.label(lab.ref_pos)
        assert original.fault == Fault.CLEAN
        assert market.record(lab.ref_pos) == market.record(lab.pos)
        assert (original.venue, original.symbol, original.seq) == (lab.venue, lab.symbol, lab.seq)
        assert lab.expected_reason in (Reason.DUPLICATE_SEQ, Reason.SEQ_TOO_OLD)
        assert lab.delay_us is not None and 0 < lab.delay_us <= 2_000_000
    for lab in _faults(market, Fault.DUPLICATE_EXEC):
        assert lab.ref_pos is not None and lab.ref_pos < lab.pos
        again = market.record(lab.pos)
        assert isinstance(again, ExecutionReport)
        assert again == market.record(lab.ref_pos)
        assert lab.expected_reason == Reason.DUPLICATE_EXEC
    exec_ids = [e.exec_id for e in market.executions]
    n_dups = len(_faults(market, Fault.DUPLICATE_EXEC))
    assert len(exec_ids) - len(set(exec_ids)) == n_dups


def test_out_of_order_ticks_arrive_after_later_ticks_within_seconds(market: Market) -> None:
    latest_seq: dict[tuple[str, str, str], int] = {}
    overtaken = 0
    labels = _faults(market, Fault.OUT_OF_ORDER)
    positions = {lab.pos for lab in labels}
    for lab in market.labels:
        if lab.kind not in ("trade", "quote"):
            continue
        key = (lab.kind, lab.venue or "", lab.symbol or "")
        if lab.pos in positions:
            assert lab.delay_us is not None and 0 < lab.delay_us <= 3_000_000
            assert lab.expected_reason is None
            overtaken += latest_seq.get(key, 0) > (lab.seq or 0)
        if lab.fault != Fault.DUPLICATE_SEQ:
            latest_seq[key] = max(latest_seq.get(key, 0), lab.seq or 0)
    assert overtaken >= 0.9 * len(labels)  # the rest waited the full hold and went out alone


def test_late_trades_arrive_minutes_after_their_event_time(market: Market) -> None:
    max_seen = 0
    late = {lab.pos for lab in _faults(market, Fault.LATE)}
    n_behind = 0
    for lab in market.labels:
        if lab.pos in late:
            assert lab.kind == "trade"
            assert lab.delay_us is not None and 60_000_000 <= lab.delay_us <= 600_000_000
            assert lab.expected_reason in (None, Reason.SEQ_TOO_OLD)
            n_behind += max_seen - lab.ts_event >= 50_000_000
        max_seen = max(max_seen, lab.ts_event)
    assert n_behind >= 0.5 * len(late)


def test_garbage_fails_to_decode_with_the_labelled_reason(market: Market) -> None:
    codec = Codec(LocalCatalogue.load())
    reasons: Counter[str] = Counter()
    for lab in _faults(market, Fault.GARBAGE):
        g = market.record(lab.pos)
        assert isinstance(g, Garbage)
        assert (g.topic, g.key) == (lab.topic, lab.key)
        assert lab.ref_pos == lab.pos - 1
        frame = g.frame(codec.encode)
        with pytest.raises(DecodeError) as err:
            codec.decode(frame)
        assert err.value.reason == lab.expected_reason == g.variant
        reasons[g.variant] += 1
    assert set(reasons) == {Reason.BAD_MAGIC, Reason.TOO_SHORT, Reason.UNKNOWN_SCHEMA_ID,
                            Reason.TRUNCATED_BODY}  # fmt: skip


def test_labels_agree_with_the_tick_filter() -> None:
    """The expected verdicts mirror tapeflow.core.market.tick_filter with its defaults, late trades
    included (the filter does not judge a print minutes old against the newest prices)."""
    from tapeflow.core.market.filter_config import FilterConfig
    from tapeflow.core.market.tick_filter import run_filter

    m = generate_market(replace(SPEC, duration_s=90.0))
    config = FilterConfig(
        instruments=frozenset(i.symbol for i in m.instruments),
        tick_sizes={i.symbol: i.tick_size for i in m.instruments},
    )
    labels = [lab for lab in m.labels if lab.kind in ("trade", "quote")]
    decisions = run_filter([m.record(lab.pos) for lab in labels], config)  # type: ignore[misc]
    mismatches = [
        (lab, d.rejection)
        for lab, d in zip(labels, decisions, strict=True)
        if (None if d.rejection is None else d.rejection.reason.value) != lab.expected_reason
    ]
    assert mismatches == []
    assert sum(d.rejection is not None for d in decisions) > 500
    assert sum(lab.fault == Fault.LATE for lab in labels) > 20
