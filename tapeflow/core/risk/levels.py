"""Edge triggering: turn level readings of the risk rules into alerts, once per incident.

Rules report *levels* (a `Reading`: within limits, WARNING or CRITICAL, for one key =
(rule, account, symbol, scope)); this module remembers the current level per key and emits
an alert only on a transition:

* within -> WARNING/CRITICAL: the breach alert;
* WARNING -> CRITICAL: an escalation alert;
* breached -> within: an INFO alert whose message starts with "cleared", so subscribers
  can close the incident (and a later breach alerts again: "clears and re-occurs");
* anything else, including CRITICAL -> WARNING, emits nothing. The level stays at the
  highest severity of the incident until it clears, so a value hovering around the
  critical threshold does not re-alert on every crossing.

Alert ids are deterministic: the first 32 hex digits (128 bits) of sha256 over the key,
the source event id and the transition (the new severity, or CLEARED), joined with the
unit separator. The same events over the same state (a replay after recovery) therefore
yield the same ids, and the sinks' upserts keep one row per alert. Time-driven transitions
(stale data, gap quiet period) name the event the incident is about (the stale mark, the
last gap) as their source, not the wall-clock tick that noticed, so they replay too.

Memory: a key is held only while it is breached, so levels are bounded by the number of
concurrently breached (rule, account, symbol) keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from hashlib import sha256
from typing import NamedTuple

from tapeflow.core.models import RiskAlert, Severity, Unit

CLEARED = "CLEARED"
ALERT_ID_HEX_DIGITS = 32


class AlertKey(NamedTuple):
    rule: str
    account_id: str | None
    symbol: str | None
    scope: str = ""
    """Extra discriminator where (account, symbol) is not enough, e.g. the feed venue."""


class Reading(NamedTuple):
    """One rule's verdict for one key at one moment. severity None = within limits."""

    key: AlertKey
    severity: Severity | None
    observed: int | None
    limit: int | None
    message: str | Callable[[], str]
    """The alert text, or a function making it: most readings are within limits and never
    become an alert, so rules run on every fill pass a lambda rather than format numbers."""
    source_event_id: str
    unit: Unit | None = None
    """The unit of `observed` and `limit`, carried by the alert."""


def message_of(reading: Reading) -> str:
    message = reading.message
    return message if isinstance(message, str) else message()


class Level(NamedTuple):
    severity: Severity
    since_ts: int
    last_ts: int
    source_event_id: str


Levels = Mapping[AlertKey, Level]


def alert_id(key: AlertKey, source_event_id: str, transition: str) -> str:
    parts = (key.rule, key.account_id or "", key.symbol or "", key.scope)
    payload = "\x1f".join((*parts, source_event_id, transition))
    return sha256(payload.encode()).hexdigest()[:ALERT_ID_HEX_DIGITS]


def _alert(reading: Reading, severity: Severity, transition: str, ts: int, text: str) -> RiskAlert:
    key = reading.key
    return RiskAlert(
        alert_id=alert_id(key, reading.source_event_id, transition),
        rule=key.rule,
        severity=severity,
        account_id=key.account_id,
        symbol=key.symbol,
        ts_event=ts,
        observed=reading.observed,
        limit=reading.limit,
        message=text,
        source_event_id=reading.source_event_id,
        unit=reading.unit,
    )


def apply_readings(
    levels: Levels, readings: Iterable[Reading], ts_event: int
) -> tuple[Levels, tuple[RiskAlert, ...]]:
    """Fold readings into the levels; return the new levels and the alerts to publish."""
    changed: dict[AlertKey, Level | None] = {}
    alerts: list[RiskAlert] = []
    for reading in readings:
        key = reading.key
        prev = changed[key] if key in changed else levels.get(key)
        new = reading.severity
        if new is None:
            if prev is not None:
                text = f"cleared (was {prev.severity}): {message_of(reading)}"
                alerts.append(_alert(reading, Severity.INFO, CLEARED, ts_event, text))
                changed[key] = None
            continue
        if prev is None:
            alerts.append(_alert(reading, new, new.value, ts_event, message_of(reading)))
            changed[key] = Level(new, ts_event, ts_event, reading.source_event_id)
        elif new.rank > prev.severity.rank:
            text = f"escalated from {prev.severity}: {message_of(reading)}"
            alerts.append(_alert(reading, new, new.value, ts_event, text))
            changed[key] = Level(new, prev.since_ts, ts_event, reading.source_event_id)
        else:
            changed[key] = prev._replace(last_ts=ts_event, source_event_id=reading.source_event_id)
    if not changed:
        return levels, ()
    merged = dict(levels)
    for key, level in changed.items():
        if level is None:
            merged.pop(key, None)
        else:
            merged[key] = level
    return merged, tuple(alerts)
