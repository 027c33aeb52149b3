"""The synthetic market the `test_synthetic_*` modules share (each builds it once)."""

from __future__ import annotations

from sources.synthetic import MarketSpec

SPEC = MarketSpec(seed=11, duration_s=180.0, fault_rate=0.05, order_rate=6.0)
"""Small enough to be quick, faulty enough that every fault kind occurs many times."""
