"""The state bounds are configuration: settings reach the core's configs, and they bound.

(#6, "Bounded state": duplicate detection, the late-data horizon and per-order state.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.conditions import REGULAR, VOLUME_ONLY
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.rejections import RejectReason
from tapeflow.core.market.sequence import SeqMode
from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG
from tapeflow.core.market.tick_filter import filter_trade_inplace
from tapeflow.core.models import Trade
from tapeflow.core.trading.shard_step import DEFAULT_SHARD_CONFIG
from tapeflow.settings import Settings


def test_defaults_are_the_cores_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.market.core_config() == DEFAULT_MARKET_CONFIG
    config = settings.trading.core_config()
    assert config.initial_cash == DEFAULT_SHARD_CONFIG.initial_cash
    assert config.retention is not None


def test_each_bound_reaches_its_config() -> None:
    settings = Settings(_env_file=None, market_seq_window=64, market_allowed_lateness_s=2.5,
                        market_late_horizon_s=600, trading_order_terminal_ttl_s=30,
                        trading_order_max_terminal=7)
    market = settings.market.core_config(batch=True)
    assert market.filter.seq_window == 64
    assert market.candles.allowed_lateness_us == 2_500_000
    assert market.candles.retention_us == 600_000_000
    assert market.merge_max_wait_us == 3_600_000_000  # --batch waits the whole horizon
    retention = settings.trading.core_config().retention
    assert retention is not None
    assert (retention.max_terminal, retention.terminal_ttl_us) == (7, 30_000_000)


def test_the_sequence_window_bounds_duplicate_detection() -> None:
    """A re-sent sequence number older than the window is no longer a known duplicate: it is
    refused as too old, and the filter keeps at most `seq_window` numbers."""
    config = Settings(_env_file=None, market_seq_window=16).market.core_config().filter
    state = FilterState()
    base = 1_700_000_000_000_000

    def trade(seq: int) -> Trade:
        return Trade("S", "V", base + seq * 1000, seq, 100 * ONE, ONE, None, ())

    for seq in range(1, 200):
        state, rejection, _gap = filter_trade_inplace(state, trade(seq), base + seq * 1000, config)
        assert rejection is None
    _, recent, _ = filter_trade_inplace(state, trade(199), base + 200_000, config)
    _, old, _ = filter_trade_inplace(state, trade(5), base + 200_000, config)
    assert recent is not None and recent.reason == RejectReason.DUPLICATE_SEQ
    assert old is not None and old.reason == RejectReason.SEQ_TOO_OLD


def test_sequence_modes_and_condition_tables_reach_the_filter(tmp_path: Path) -> None:
    """The venue semantics are settings of the market group, so the stream and the backfill
    (both `MarketSettings.core_config`) judge alike."""
    tables = tmp_path / "conditions.json"
    tables.write_text(json.dumps({"XCME": {"codes": {"0": "regular"}, "unknown": "volume_only",
                                           "extends_default": False},
                                  "*": {"codes": {"I": "regular"}}}))
    settings = Settings(_env_file=None, market_seq_mode="unique",
                        market_venue_seq_modes="XCME=packet, XOSE=none",
                        market_condition_tables=tables)
    config = settings.market.core_config().filter
    assert config.seq_mode_of("XNAS") is SeqMode.UNIQUE
    assert config.seq_mode_of("XCME") is SeqMode.PACKET
    assert config.seq_mode_of("XOSE") is SeqMode.NONE
    assert config.conditions.effect("XCME", ("0",)) == REGULAR
    assert config.conditions.effect("XCME", ("Z",)) == VOLUME_ONLY
    assert config.conditions.effect("XNAS", ("I",)) == REGULAR  # the default table, replaced
    assert config.conditions.effect("XNAS", ("Z",)) == VOLUME_ONLY  # ...on top of CTA/UTP
    assert Settings(_env_file=None).market.core_config().filter.seq_mode is SeqMode.PACKET
    tables.write_text('{"XCME": {"codes": {"0": "sometimes"}}}')
    with pytest.raises(ValueError, match="condition tables"):
        Settings(_env_file=None, market_condition_tables=tables)
