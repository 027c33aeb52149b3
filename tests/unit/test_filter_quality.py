"""The tick filter's acceptance targets, on a small labelled synthetic market.

Targets (the issue; the full report is bench/filter_quality.py): recall >= 0.99 on price spikes
of 1 % or more and on every deterministic fault (zero or negative price or size, crossed quote,
duplicate), each with its expected reason; false rejections of genuine ticks (clean, out of
order, late) <= 0.1 %. Correctness figures only, no timing.
"""

from __future__ import annotations

import pytest

from sources.synthetic import MarketSpec, generate_market
from sources.synthetic.quality import (
    DETERMINISTIC,
    GENUINE,
    Quality,
    filter_config_for,
    score_market,
)

SPEC = MarketSpec(seed=1, duration_s=120.0, fault_rate=0.05)
"""Two minutes, five times the default fault rate: every fault kind occurs 100+ times."""
RECALL = 0.99
FALSE_REJECTIONS = 0.001


@pytest.fixture(scope="module")
def scores() -> tuple[Quality, Quality]:
    market = generate_market(SPEC)
    as_streamed = score_market(market)
    outlier_alone = score_market(market, filter_config_for(market, quote_tolerance_spreads=None))
    return as_streamed, outlier_alone


def test_spikes_of_one_percent_or_more_are_caught(scores: tuple[Quality, Quality]) -> None:
    q, _ = scores
    spikes = q.spikes_at_least(100)
    assert spikes.n == q.fault("price_spike").n >= 100
    assert spikes.recall >= RECALL
    assert spikes.recall_as_labelled >= RECALL
    for bps, tally in q.spikes_by_bps.items():
        assert tally.recall >= RECALL, (bps, tally)


def test_the_outlier_rule_alone_catches_the_spikes(scores: tuple[Quality, Quality]) -> None:
    # With outside_quote off (a backfill that cannot interleave quotes as the stream did),
    # the price-outlier rule is the only defence.
    _, q = scores
    spikes = q.spikes_at_least(100)
    assert spikes.n >= 100
    assert spikes.recall >= RECALL
    assert set(spikes.reasons) == {"price_outlier"}
    assert q.genuine().false_rejection_rate <= FALSE_REJECTIONS


@pytest.mark.parametrize("fault", DETERMINISTIC)
def test_deterministic_faults_are_rejected_with_their_reason(
    scores: tuple[Quality, Quality], fault: str
) -> None:
    q, _ = scores
    tally = q.fault(fault)
    assert tally.n >= 100
    assert tally.recall >= RECALL
    assert tally.recall_as_labelled >= RECALL, tally.reasons


@pytest.mark.parametrize("fault", GENUINE)
def test_genuine_ticks_are_rarely_rejected(scores: tuple[Quality, Quality], fault: str) -> None:
    # Per kind, so a regression on the rarer kinds (late trades judged against newer prices)
    # is not diluted by the clean ticks.
    q, _ = scores
    tally = q.fault(fault)
    assert tally.n >= 50
    assert tally.false_rejection_rate <= FALSE_REJECTIONS, tally.false_reasons
    assert q.genuine().false_rejection_rate <= FALSE_REJECTIONS
    assert q.genuine("trade").false_rejection_rate <= FALSE_REJECTIONS
