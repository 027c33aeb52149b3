"""Sequence numbers as real venues send them (issue 14): shared per packet, unique per message,
absent; and venue resets. Each test failed on the filter before the venue's sequence semantics
became a setting.

CME MDP 3.0 (Market Data Platform, "Packet Structure": the packet header's MsgSeqNum is the
packet's sequence number, and every trade entry of that packet carries it) is the packet case.
"""

from __future__ import annotations

import pytest

from tapeflow.core.market.filter_config import DEFAULT_FILTER_CONFIG, FilterConfig
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.rejections import RejectReason
from tapeflow.core.market.sequence import SeqMode
from tapeflow.core.market.tick_filter import run_filter
from tapeflow.core.models import Trade
from tests.support.market_builders import T0, S, px, quote, trade

R = RejectReason
UNIQUE = FilterConfig(seq_mode=SeqMode.UNIQUE)


def _packet(seq: int, ts: int, prices: list[str], venue: str = "XCME") -> list[Trade]:
    """One MDP packet: its trades share the packet's sequence number and transact time."""
    return [trade(p, seq=seq, ts=ts, size=i + 1, venue=venue) for i, p in enumerate(prices)]


def _verdicts(ticks: list[Trade], config: FilterConfig = DEFAULT_FILTER_CONFIG) -> list[str]:
    return ["ok" if d.rejection is None else d.rejection.reason.value
            for d in run_filter(ticks, config)]


def test_the_default_is_packet_and_every_print_of_a_packet_is_accepted() -> None:
    assert DEFAULT_FILTER_CONFIG.seq_mode is SeqMode.PACKET
    tape = _packet(1, T0, ["10", "10.01", "10.01"]) + _packet(2, T0 + 5, ["10.02", "10.02"])
    assert _verdicts(tape) == ["ok"] * 5
    # Before: every print of a packet but the first was a duplicate, and its volume was lost.
    assert _verdicts(tape, UNIQUE) == ["ok", "duplicate_seq", "duplicate_seq", "ok",
                                       "duplicate_seq"]


def test_a_duplicate_is_the_same_venue_sequence_and_content() -> None:
    first = _packet(7, T0, ["10", "10.01"])
    resent = list(first)  # the A/B feed's copy of the same packet
    other_venue = [t._replace(venue="XEUR") for t in first]
    tape = first + resent + other_venue + _packet(8, T0 + 1, ["10.02"]) + first
    assert _verdicts(tape) == ["ok", "ok", "duplicate_seq", "duplicate_seq", "ok", "ok", "ok",
                               "duplicate_seq", "duplicate_seq"]


def test_a_packet_member_held_back_behind_the_next_packet_is_accepted_once() -> None:
    a, b = _packet(3, T0, ["10", "10.01"])
    c = _packet(4, T0 + 10, ["10.02"])[0]
    assert _verdicts([a, c, b, b]) == ["ok", "ok", "ok", "duplicate_seq"]


def test_a_packet_seen_longer_ago_than_the_memory_is_a_resent_packet() -> None:
    config = FilterConfig(seq_packet_memory=4)
    tape = [trade("10", seq=s, ts=T0 + s) for s in range(1, 11)]
    late_member = trade("10.01", seq=3, ts=T0 + 3)
    assert _verdicts([*tape, late_member], config)[-1] == "duplicate_seq"
    assert _verdicts([*tape[:5], late_member], config)[-1] == "ok"


def test_gaps_are_packets_missing() -> None:
    state = FilterState()
    decisions = run_filter(_packet(1, T0, ["10", "10"]) + _packet(4, T0 + 1, ["10"]),
                           DEFAULT_FILTER_CONFIG, state=state)
    gaps = [d.gap for d in decisions if d.gap is not None]
    assert [(g.expected, g.received, g.missing) for g in gaps] == [(2, 4, 2)]
    assert state.counters["trade.seq_shared"] == 1


def test_venues_have_their_own_mode() -> None:
    config = FilterConfig(seq_mode=SeqMode.UNIQUE, venue_seq_modes={"XCME": SeqMode.PACKET})
    cme = _packet(1, T0, ["10", "10.01"])
    nasdaq = _packet(1, T0, ["10", "10.01"], venue="XNAS")
    assert _verdicts(cme + nasdaq, config) == ["ok", "ok", "ok", "duplicate_seq"]
    assert config.seq_mode_of("XNAS") is SeqMode.UNIQUE


def test_a_venue_without_sequence_numbers_dedupes_on_content_only() -> None:
    config = FilterConfig(seq_mode=SeqMode.NONE, seq_window=16)
    tape = [trade("10", seq=0, ts=T0 + i, size=1) for i in range(20)]
    same_instant = trade("10", seq=0, ts=T0 + 19, size=2)
    state = FilterState()
    verdicts = _verdicts([*tape, tape[19], tape[10], same_instant, tape[0]], config)
    # No gaps and no duplicates by number; the re-sent tick 19 and 10 are duplicates; tick 0
    # is older than the window (16 ticks) and can no longer be recognised.
    assert verdicts == ["ok"] * 20 + ["duplicate_seq", "duplicate_seq", "ok", "ok"]
    assert not [d.gap for d in run_filter(tape, config, state=state) if d.gap is not None]


def test_quotes_follow_the_venues_mode_too() -> None:
    q1 = quote("10", "10.02", seq=5, ts=T0)
    q2 = quote("10.01", "10.02", seq=5, ts=T0)
    assert [d.rejection for d in run_filter([q1, q2, q1])][:2] == [None, None]
    assert run_filter([q1, q2, q1])[2].rejection is not None


@pytest.mark.parametrize("mode", list(SeqMode))
def test_a_venue_restarting_at_one_is_a_reset_not_a_minute_of_rejections(mode: SeqMode) -> None:
    """A venue restarts (a gateway failover) and numbers from 1 again two seconds later.
    Before: `seq_too_old` (below the window) or `duplicate_seq` for a minute of event time."""
    config = FilterConfig(seq_mode=mode, seq_window=64)
    before = [trade("10", seq=s, ts=T0 + s * 1000) for s in range(1, 201)]
    restart = T0 + 200 * 1000 + 2 * S
    after = [trade("10", seq=s, ts=restart + s * 1000) for s in range(1, 51)]
    state = FilterState()
    decisions = run_filter(before + after, config, state=state)
    assert all(d.rejection is None for d in decisions), {
        d.rejection.reason for d in decisions if d.rejection}
    if mode is not SeqMode.NONE:
        assert state.counters["trade.seq_resets"] == 1
        assert not [d.gap for d in decisions if d.gap is not None]
    # Resent old messages are still duplicates, and not resets: their time is the old one.
    assert run_filter([*before, *after, before[-1], after[-1]], config)[-2].rejection is not None
    assert run_filter([*before, *after, before[-1], after[-1]], config)[-1].rejection is not None


def test_a_reset_inside_the_window_and_a_late_tick_of_the_old_numbering() -> None:
    """Only 30 numbers before the reset (inside the window): restarting at 1 is still a reset;
    a trade of the old numbering delivered after the reset is judged by the old numbering."""
    before = [trade("10", seq=s, ts=T0 + s * 1000) for s in range(1, 31) if s != 20]
    restart = T0 + 31 * 1000 + 2 * S
    after = [trade("10", seq=s, ts=restart + s * 1000) for s in range(1, 11)]
    straggler = trade("10", seq=20, ts=T0 + 20 * 1000)
    state = FilterState()
    decisions = run_filter([*before, *after, straggler, straggler, after[-1]._replace(seq=11)],
                           UNIQUE, state=state)
    verdicts = ["ok" if d.rejection is None else d.rejection.reason.value for d in decisions]
    assert verdicts == ["ok"] * (len(before) + len(after)) + ["ok", "duplicate_seq", "ok"]
    assert state.counters["trade.seq_resets"] == 1
    # The straggler filled a hole of the old numbering; no gap in the new one was reported.
    assert [d.gap.received for d in decisions if d.gap is not None] == [21]


def test_a_resent_tick_is_never_taken_for_a_reset() -> None:
    """The same number again with the same or an earlier event time is a duplicate."""
    tape = [trade("10", seq=s, ts=T0 + s) for s in range(1, 6)]
    assert run_filter([*tape, tape[0]], UNIQUE)[-1].rejection is not None
    assert run_filter([*tape, tape[0]._replace(price=px("10.5"))], UNIQUE)[-1].rejection \
        is not None
