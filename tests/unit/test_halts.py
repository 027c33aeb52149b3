"""Halts and reopenings (issue 14): a reopening 10 % away is real.

Each scenario failed before: the reopening print and the next three trades were rejected as
`price_outlier`, and five bad prints outside the quote re-anchored the price reference so that
the next genuine trades were rejected. Under the Limit Up-Limit Down plan a trading pause lasts
5 minutes and the security reopens by auction, at whatever price the auction finds.
"""

from __future__ import annotations

from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.tick_filter import run_filter
from tapeflow.core.models import Quote, Trade
from tests.support.market_builders import T0, S, quote, trade

MINUTE = 60 * S


def _reasons(ticks: list[Trade | Quote], config: FilterConfig | None = None,
             state: FilterState | None = None) -> list[str]:
    decisions = run_filter(ticks, config or FilterConfig(), state=state)
    return ["ok" if d.rejection is None else d.rejection.reason.value
            for d in decisions if isinstance(d.tick, Trade)]


def _before_halt(n: int = 30) -> list[Trade | Quote]:
    out: list[Trade | Quote] = [quote("100.00", "100.02", seq=1, ts=T0)]
    out += [trade("100.01", seq=i + 1, ts=T0 + i * 100_000) for i in range(n)]
    return out


def test_a_reopening_inside_a_fresh_quote_is_accepted() -> None:
    # A 4-minute pause (shorter than the reference's reset gap, so only the quote decides).
    reopen = T0 + 4 * MINUTE
    tape = [*_before_halt(), quote("110.00", "110.02", seq=2, ts=reopen)]
    tape += [trade("110.01", seq=31 + i, ts=reopen + 1000 + i) for i in range(6)]
    state = FilterState()
    assert _reasons(tape, state=state)[30:] == ["ok"] * 6
    assert state.counters["trade.inside_quote_outliers"] == 4
    assert state.counters["trade.reanchors"] == 1  # the 5th agreeing print re-anchors
    # ...so that trades judged by the reference alone (the quote is now stale) are fine too.
    later = [trade("110.03", seq=37 + i, ts=reopen + 20 * S + i) for i in range(3)]
    assert _reasons(tape + later)[36:] == ["ok"] * 3


def test_a_trade_outside_the_reopening_quote_is_still_rejected() -> None:
    reopen = T0 + 4 * MINUTE
    tape = [*_before_halt(), quote("110.00", "110.02", seq=2, ts=reopen),
            trade("100.01", seq=31, ts=reopen + 1000)]
    assert _reasons(tape)[-1] == "outside_quote"


def test_a_long_gap_in_event_time_starts_a_new_reference() -> None:
    # No quotes at all (a trades-only feed): 6 minutes of silence, then 10 % higher.
    tape = [trade("100.01", seq=i + 1, ts=T0 + i * 100_000) for i in range(30)]
    reopen = T0 + 3 * S + 6 * MINUTE
    tape += [trade("110.01", seq=31 + i, ts=reopen + i) for i in range(6)]
    state = FilterState()
    assert _reasons(tape, state=state)[30:] == ["ok"] * 6
    assert state.counters["trade.reference_resets"] == 1
    # Off, the old behaviour: four rejections, then the re-anchor.
    off = FilterConfig(outlier_reset_gap_us=None)
    assert _reasons(tape, off)[30:] == ["price_outlier"] * 4 + ["ok"] * 2


def test_the_reference_restarts_with_a_warm_up_and_then_judges_again() -> None:
    tape = [trade("100.01", seq=i + 1, ts=T0 + i) for i in range(30)]
    reopen = T0 + 10 * MINUTE
    tape += [trade("110.01", seq=31 + i, ts=reopen + i) for i in range(10)]
    tape += [trade("130", seq=41, ts=reopen + 20)]  # a bad print once the new level is known
    assert _reasons(tape)[-1] == "price_outlier"


def test_prints_rejected_outside_the_quote_do_not_re_anchor_the_reference() -> None:
    tape = _before_halt()
    bad_at = T0 + 4 * S
    tape += [trade("105", seq=31 + i, ts=bad_at + i) for i in range(5)]
    # The quote is stale 11 s later: the next genuine trades face the reference alone.
    genuine_at = T0 + 15 * S
    tape += [trade("100.01", seq=36 + i, ts=genuine_at + i) for i in range(4)]
    reasons = _reasons(tape)
    assert reasons[30:35] == ["outside_quote"] * 5
    assert reasons[35:] == ["ok"] * 4


def test_a_bad_print_outside_the_quote_does_not_join_the_reference() -> None:
    """The reference is the market: 25 bad prints outside a fresh quote must not drag the
    median, or genuine trades after the quote goes stale would be rejected."""
    tape = _before_halt(25)
    tape += [quote("100.00", "100.02", seq=2 + i, ts=T0 + 3 * S + i * 200_000)
             for i in range(25)]
    tape += [trade("103", seq=26 + i, ts=T0 + 3 * S + i * 200_000 + 1) for i in range(25)]
    tape += [trade("100.01", seq=51 + i, ts=T0 + 30 * S + i) for i in range(3)]
    reasons = _reasons(sorted(tape, key=lambda t: (t.ts_event, isinstance(t, Trade))))
    assert reasons[25:50] == ["outside_quote"] * 25
    assert reasons[50:] == ["ok"] * 3
