"""Topic records as the live view's events: JSON-ready dicts with a `kind`, exact decimals as
strings, times as ISO-8601 UTC (`...Z`, to the microsecond, as the API's rows), so the page
can match an event to the row it replaces by plain string equality."""

from __future__ import annotations

from typing import Any

from jobs.alerts import iso_utc
from tapeflow.core.fixedpoint import fmt
from tapeflow.core.market.candle_buckets import Candle
from tapeflow.core.models import RiskAlert

INTERVAL_NAMES = {1_000_000: "1s", 60_000_000: "1m", 300_000_000: "5m", 900_000_000: "15m",
                  3_600_000_000: "1h", 86_400_000_000: "1d"}


def interval_name(width_us: int) -> str:
    """`1s`, `1m`, ... as the query API names intervals; other widths in microseconds."""
    return INTERVAL_NAMES.get(width_us, f"{width_us}us")


def _price(units: int | None) -> str | None:
    return None if units is None else fmt(units)


def alert_event(alert: RiskAlert) -> dict[str, Any]:
    """A risk alert as the alerts page shows it."""
    return {"kind": "alert", "alert_id": alert.alert_id, "rule": alert.rule,
            "severity": str(alert.severity), "account_id": alert.account_id,
            "symbol": alert.symbol, "ts_event": iso_utc(alert.ts_event),
            "observed": _price(alert.observed), "limit_value": _price(alert.limit),
            "message": alert.message, "source_event_id": alert.source_event_id}


def candle_event(candle: Candle) -> dict[str, Any]:
    """A closed or corrected candle. `version` is a string: writer versions exceed what a
    JavaScript number holds exactly, and the page compares them as BigInt (higher wins)."""
    return {"kind": "candle", "symbol": candle.symbol,
            "interval": interval_name(candle.width_us), "bucket": iso_utc(candle.bucket),
            "open": _price(candle.open), "high": _price(candle.high),
            "low": _price(candle.low), "close": _price(candle.close),
            "volume": fmt(candle.volume), "vwap": fmt(candle.vwap),
            "trade_count": candle.trade_count, "version": str(candle.version)}
