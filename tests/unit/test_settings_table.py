"""The README's settings table is the one the settings generate: a knob cannot exist without
its line in the documentation, nor a documented knob without its field."""

from __future__ import annotations

import re

import pytest

from tapeflow.settings import Settings, locate
from tapeflow.settings.table import README, replace_in, rows


def test_the_readme_table_is_up_to_date() -> None:
    text = README.read_text()
    assert replace_in(text) == text, "run: uv run python -m tapeflow.settings.table"


def test_every_documented_variable_names_a_knob_of_its_group() -> None:
    for variable, group, _default, _meaning in rows():
        assert re.fullmatch(r"TAPEFLOW_[A-Z0-9_]+", variable)
        if not group:  # HOME and SECRETS_DIR: read by the loader itself
            continue
        assert locate(variable.removeprefix("TAPEFLOW_").lower())[0] == group, variable


def test_a_documented_variable_reaches_its_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_MARKET_SEQ_WINDOW", "64")
    monkeypatch.setenv("TAPEFLOW_WORKERS", "3")
    monkeypatch.setenv("TAPEFLOW_TRADING_INITIAL_CASH", "2500.5")
    settings = Settings(_env_file=None)
    assert (settings.market.seq_window, settings.runtime.workers) == (64, 3)
    assert settings.trading.core_config().initial_cash == 250_050_000_000


def test_a_variable_of_an_earlier_version_is_still_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_SEQ_WINDOW", "128")
    with pytest.warns(FutureWarning, match="TAPEFLOW_SEQ_WINDOW is now called "
                      "TAPEFLOW_MARKET_SEQ_WINDOW"):
        settings = Settings(_env_file=None)
    assert settings.market.seq_window == 128
    monkeypatch.setenv("TAPEFLOW_MARKET_SEQ_WINDOW", "256")  # the new name wins
    assert Settings(_env_file=None).market.seq_window == 256
