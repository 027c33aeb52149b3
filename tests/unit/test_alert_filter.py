"""The subscriber's filters and the configured account restriction
(tapeflow.core.risk.subscription), the `--start` parser of `tapeflow alerts` and the JSON line
format (jobs.alerts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.alerts import alert_json, default_group, parse_since
from tapeflow.core.models import RiskAlert, Severity, Unit
from tapeflow.core.risk.subscription import AlertFilter, delivered, permitted, refused_accounts
from tapeflow.settings import Settings

T0 = 1_767_623_400_000_000  # 2026-01-05T14:30:00Z


def _alert(account: str | None = "A", symbol: str | None = "AAPL", rule: str = "fat_finger",
           severity: Severity = Severity.WARNING) -> RiskAlert:
    return RiskAlert("id", rule, severity, account, symbol, T0, 150_000_000, None, "m", "e1")


@pytest.mark.parametrize(("wanted", "alert", "expected"), [
    (AlertFilter(), _alert(), True),
    (AlertFilter(), _alert(account=None, symbol=None), True),
    (AlertFilter.of(accounts=["A"]), _alert(), True),
    (AlertFilter.of(accounts=["B"]), _alert(), False),
    (AlertFilter.of(accounts=["A", "B"]), _alert(account="B"), True),
    (AlertFilter.of(accounts=["A"]), _alert(account=None), False),
    (AlertFilter.of(symbols=["AAPL"]), _alert(), True),
    (AlertFilter.of(symbols=["MSFT"]), _alert(), False),
    (AlertFilter.of(symbols=["AAPL"]), _alert(symbol=None), False),
    (AlertFilter.of(rules=["fat_finger"]), _alert(), True),
    (AlertFilter.of(rules=["drawdown"]), _alert(), False),
    (AlertFilter.of(min_severity="info"), _alert(severity=Severity.INFO), True),
    (AlertFilter.of(min_severity="warning"), _alert(severity=Severity.INFO), False),
    (AlertFilter.of(min_severity="warning"), _alert(severity=Severity.WARNING), True),
    (AlertFilter.of(min_severity="WARNING"), _alert(severity=Severity.CRITICAL), True),
    (AlertFilter.of(min_severity="critical"), _alert(severity=Severity.WARNING), False),
    (AlertFilter.of(accounts=["A"], symbols=["AAPL"], rules=["fat_finger"],
                    min_severity="warning"), _alert(), True),
    (AlertFilter.of(accounts=["A"], symbols=["MSFT"]), _alert(), False),
])
def test_filter_table(wanted: AlertFilter, alert: RiskAlert, expected: bool) -> None:
    assert wanted.matches(alert) is expected


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError):
        AlertFilter.of(min_severity="loud")


@pytest.mark.parametrize(("allowed", "account", "expected"), [
    (None, "A", True),
    (None, None, True),
    (frozenset({"A"}), "A", True),
    (frozenset({"A"}), "B", False),
    (frozenset({"A"}), None, False),  # account-less alerts are withheld from restricted ones
])
def test_permitted_table(allowed: frozenset[str] | None, account: str | None,
                         expected: bool) -> None:
    assert permitted(_alert(account=account), allowed) is expected


accounts = st.sampled_from(["A", "B", "C", None])


@given(allowed=st.frozensets(st.sampled_from(["A", "B", "C"]), min_size=1),
       asked=st.frozensets(st.sampled_from(["A", "B", "C"])), account=accounts,
       severity=st.sampled_from(list(Severity)))
def test_no_filter_widens_the_restriction(allowed: frozenset[str], asked: frozenset[str],
                                          account: str | None, severity: Severity) -> None:
    alert = _alert(account=account, severity=severity)
    wanted = AlertFilter(accounts=asked)
    if delivered(alert, wanted, allowed):
        assert alert.account_id in allowed
        assert not asked or alert.account_id in asked
    assert refused_accounts(wanted, allowed) == asked - allowed


def test_digest_is_order_free_and_filter_specific() -> None:
    one = AlertFilter.of(accounts=["A", "B"], rules=["x"])
    assert one.digest() == AlertFilter.of(accounts=["B", "A"], rules=["x"]).digest()
    assert one.digest() != AlertFilter.of(accounts=["A"], rules=["x"]).digest()
    assert one.digest() != AlertFilter.of(accounts=["A", "B"], rules=["x"],
                                          min_severity="critical").digest()
    assert default_group(one).startswith("tapeflow-alerts-")
    assert default_group(one).endswith(one.digest())


NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("15m", datetime(2026, 11, 22, 14, 45, tzinfo=UTC)),
    ("2h", datetime(2026, 11, 22, 13, 0, tzinfo=UTC)),
    ("1d", datetime(2026, 11, 21, 15, 0, tzinfo=UTC)),
    ("30s", datetime(2026, 11, 22, 14, 59, 30, tzinfo=UTC)),
    ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
    ("2026-11-20T10:00:00", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
    ("2026-11-20T12:00:00+02:00", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
])
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "15 minutes", "-5m", ""])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--start"):
        parse_since(text, NOW)


def test_json_line_is_exact() -> None:
    alert = RiskAlert("a1", "drawdown", Severity.CRITICAL, "ACC-1", None, T0 + 7,
                      -123_456_789_012, 1, "drawdown 12% > 10%", "e2")
    doc = json.loads(alert_json(alert))
    assert doc == {
        "alert_id": "a1", "rule": "drawdown", "severity": "CRITICAL", "account_id": "ACC-1",
        "symbol": None, "ts_event": "2026-01-05T14:30:00.000007Z",
        "observed": "-1234.56789012", "limit": "0.00000001",
        "message": "drawdown 12% > 10%", "source_event_id": "e2", "unit": None,
    }
    assert Decimal(doc["observed"]) * 10**8 == alert.observed
    assert json.loads(alert_json(alert._replace(unit=Unit.BPS)))["unit"] == "bps"


def test_allowed_accounts_setting_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEFLOW_ACCESS_ALERTS_ALLOWED_ACCOUNTS", "ACC001, ACC002")
    assert Settings().access.alerts_allowed_accounts == frozenset({"ACC001", "ACC002"})
    monkeypatch.delenv("TAPEFLOW_ACCESS_ALERTS_ALLOWED_ACCOUNTS")
    assert Settings().access.alerts_allowed_accounts is None
    monkeypatch.setenv("TAPEFLOW_ACCESS_ALERTS_ALLOWED_ACCOUNTS", " , ")
    with pytest.raises(ValueError, match="at least one account"):
        Settings()
