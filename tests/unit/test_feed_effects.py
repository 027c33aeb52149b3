"""The synthetic market with real-feed effects (packets, a venue reset, halts, sale conditions):
the filter accepts the genuine ticks they change and still catches the faults.
The rates on larger markets are in bench/filter_quality.py (README, "Filter quality")."""

from __future__ import annotations

import pytest

from sources.synthetic import MarketSpec, generate_market
from sources.synthetic.feed_effects import FeedEffects, apply_feed_effects
from sources.synthetic.quality import (
    DETERMINISTIC,
    FEED_EFFECTS,
    GENUINE,
    Quality,
    filter_config_for,
    score_market,
)
from tapeflow.core.market.sequence import SeqMode

SPEC = MarketSpec(seed=3, duration_s=180.0, fault_rate=0.05)


@pytest.fixture(scope="module")
def market_scores() -> tuple[Quality, Quality]:
    market = apply_feed_effects(generate_market(SPEC), FeedEffects(halt_s=360.0))
    before = filter_config_for(market, seq_mode=SeqMode.UNIQUE, outlier_reset_gap_us=None)
    return score_market(market), score_market(market, before)


def test_every_effect_occurs_and_no_genuine_tick_is_rejected(
        market_scores: tuple[Quality, Quality]) -> None:
    q, _ = market_scores
    for kind in FEED_EFFECTS:
        assert q.fault(kind).n >= 20, kind
        assert q.fault(kind).false_rejected == 0, (kind, q.fault(kind).false_reasons)
    assert q.fault(*GENUINE).false_rejection_rate <= 0.001
    assert q.counters["trade.seq_resets"] >= 1 and q.counters["quote.seq_resets"] >= 1
    assert q.counters["trade.seq_shared"] > 0


def test_the_faults_are_still_caught(market_scores: tuple[Quality, Quality]) -> None:
    q, _ = market_scores
    assert q.spikes_at_least(100).recall >= 0.99
    for fault in DETERMINISTIC:
        assert q.fault(fault).recall >= 0.99, fault


def test_before_packet_members_were_lost(market_scores: tuple[Quality, Quality]) -> None:
    _, before = market_scores
    members = before.fault("packet_member")
    assert members.false_rejected > members.n // 4
    assert set(members.false_reasons) == {"duplicate_seq"}
