"""Risk: limits as configuration, the rules as pure functions of limits and state, edge
triggering into alerts with deterministic ids, the feed rules, which rules run on which event,
and which alerts a subscriber receives (docs/trading-core.md, docs/alerts.md)."""

import tapeflow.core.trading  # noqa: F401 - the rules read trading state: load it whole first
from tapeflow.core.risk.assess import (
    FeedRiskState,
    RiskState,
    assess_execution,
    assess_feed_timer,
    assess_gap,
    assess_mark,
    assess_timer,
    invalid_execution_alert,
)
from tapeflow.core.risk.levels import AlertKey, Level, Reading, alert_id, apply_readings
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits, SessionHours
from tapeflow.core.risk.subscription import (
    AlertFilter,
    delivered,
    permitted,
    permitted_account,
    refused_accounts,
)

__all__ = [
    "AlertFilter",
    "AlertKey",
    "FeedRiskState",
    "Level",
    "Reading",
    "RiskLimitBook",
    "RiskLimits",
    "RiskState",
    "SessionHours",
    "alert_id",
    "apply_readings",
    "assess_execution",
    "assess_feed_timer",
    "assess_gap",
    "assess_mark",
    "assess_timer",
    "delivered",
    "invalid_execution_alert",
    "permitted",
    "permitted_account",
    "refused_accounts",
]
