"""`sources.postgres.limits.RefreshingConfig`: limits reloaded while the flow runs, without the
flow's worker ever waiting for the load (issue 12: nothing on the worker delays an alert)."""

from __future__ import annotations

import threading
import time

from sources.postgres.limits import RefreshingConfig
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits
from tapeflow.core.trading.account_step import TradingConfig

OLD = TradingConfig(RiskLimitBook(RiskLimits(max_order_qty=1 * ONE)))
NEW = TradingConfig(RiskLimitBook(RiskLimits(max_order_qty=2 * ONE)))


def test_a_due_reload_runs_beside_the_caller_and_applies_when_loaded() -> None:
    now = [0.0]
    release = threading.Event()
    loads = iter([OLD, NEW])

    def load() -> TradingConfig:
        config = next(loads)
        if config is NEW:
            assert release.wait(5)
        return config

    refreshing = RefreshingConfig(load, every_s=30, clock=lambda: now[0])
    assert refreshing.current() is OLD
    now[0] = 31.0
    started = time.monotonic()
    assert refreshing.current() is OLD  # the load waits; the caller does not
    assert refreshing.current() is OLD
    assert time.monotonic() - started < 1
    release.set()
    deadline = time.monotonic() + 5
    while refreshing.current() is not NEW:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert refreshing.reloads == 1


def test_a_failed_reload_keeps_the_last_good_limits() -> None:
    now = [0.0]
    calls = [0]

    def load() -> TradingConfig:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError("store down")
        return OLD

    refreshing = RefreshingConfig(load, every_s=30, clock=lambda: now[0], background=False)
    now[0] = 31.0
    assert refreshing.current() is OLD
    assert refreshing.failures == 1 and refreshing.reloads == 0
    now[0] = 40.0  # not due again before 61 s
    refreshing.current()
    assert calls[0] == 2
