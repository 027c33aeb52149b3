"""Alert subscriptions: a filtered, resumable stream of `RiskAlert`s from `risk.alerts`, or
from the alert topics of some desks.

```python
from jobs.alerts import AlertFilter, subscribe
with subscribe(settings, AlertFilter.of(accounts=["ACC001"], min_severity="WARNING"),
               follow=True) as alerts:
    for alert in alerts:
        handle(alert)        # the position is committed when you come back for the next one
```

Delivery (docs/alerts.md): each subscriber has a consumer group (`group`, default named after
the user and the filters). A delivered alert's position is committed when the caller comes
back for the next alert (it has handled this one) or leaves the `with` block normally; records
the filters skip are committed along with it, or after 5 s idle, or at the end. A restart with
the same group resumes after the last handled alert: nothing lost, nothing repeated. If the
process dies between handling an alert and that commit, the alert comes again after the
restart: at-least-once, not exactly-once (the consumer's output and Kafka's offsets are not
one transaction). Alert ids are deterministic, so a consumer that must not act twice
deduplicates on `alert_id`.

Who may read which alerts is the broker's to enforce (docs/security.md): a desk's subscriber
reads its desk topics (`desks=`), which its principal has an ACL for, and its consumer groups
are named under its principal (`PRINCIPAL.`), the only groups it may use. A topic or group the
broker refuses is one `AccessDeniedError` line naming the ACL. The configured restriction
(`Settings.access.alerts_allowed_accounts`) is a convenience on top, applied here, inside the
iterator, after the caller's filters: no argument can widen it
(`tapeflow.core.risk.subscription`), but only this client obeys it.

Undecodable records are skipped (with a warning through `warn`), their positions committed:
a subscriber never stops on one bad frame; the flows' dead-letter topic is where bad input is
kept, and the alert topic is written only by Tapeflow.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from schemas.catalogue import TOPIC_ALERTS
from schemas.codec import Codec, DecodeError, codec_for
from sources.kafka.group_reader import FROM_COMMITTED, GroupReader, StartAt, TopicAccessError
from tapeflow.core.fixedpoint import fmt
from tapeflow.core.models import RiskAlert
from tapeflow.core.risk.subscription import AlertFilter, delivered, refused_accounts
from tapeflow.errors import StoreUnavailableError
from tapeflow.services.kafka import AccessDeniedError
from tapeflow.services.kafka_access import subscriber_group_prefix
from tapeflow.settings import Settings
from tapeflow.settings.base import identifier

__all__ = ["AlertFilter", "AlertSubscription", "StartAt", "alert_json", "default_group",
           "parse_since", "refused_accounts", "subscribe", "subscriber_group"]

log = logging.getLogger("tapeflow.alerts")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str, now: datetime) -> datetime:
    """`tapeflow alerts --start`: an ISO-8601 time (no zone: UTC) or a duration back from `now`
    like 30s, 15m, 2h, 1d, 1w. Raises ValueError with a message fit for the user."""
    match = _RELATIVE.match(text)
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2).lower()])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--start takes an ISO time (2026-11-22T15:00:00Z) or a duration "
                         f"like 15m, 2h, 1d; not {text!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def iso_utc(ts_us: int) -> str:
    """Integer microseconds as ISO-8601 UTC with a `Z`, exact to the microsecond."""
    moment = _EPOCH + timedelta(microseconds=ts_us)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def alert_json(alert: RiskAlert) -> str:
    """One JSON line: the Avro fields by name, decimals as strings (exact, 8 decimals),
    times ISO-8601 UTC."""
    doc: dict[str, Any] = {
        "alert_id": alert.alert_id,
        "rule": alert.rule,
        "severity": str(alert.severity),
        "account_id": alert.account_id,
        "symbol": alert.symbol,
        "ts_event": iso_utc(alert.ts_event),
        "observed": None if alert.observed is None else fmt(alert.observed),
        "limit": None if alert.limit is None else fmt(alert.limit),
        "message": alert.message,
        "source_event_id": alert.source_event_id,
        "unit": None if alert.unit is None else str(alert.unit),
    }
    return json.dumps(doc, ensure_ascii=False)


def default_group(wanted: AlertFilter, desks: Sequence[str] = ()) -> str:
    """`tapeflow-alerts-<user>-<digest of the filters and desks>`: running the same command
    again resumes it; another user, other filters or other desks is another subscriber."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "user"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", user) or "user"
    digest = wanted.digest()
    if desks:
        digest = hashlib.sha256(f"{digest}|{','.join(sorted(desks))}".encode()).hexdigest()[:8]
    return f"tapeflow-alerts-{safe}-{digest}"


def subscriber_group(settings: Settings, name: str) -> str:
    """The consumer group `name` under this subscriber's principal (`PRINCIPAL.name`): the
    broker lets a subscriber use only the groups named after it, so none can join or move
    another's. Without a SASL user (an unauthenticated broker), `name` itself."""
    principal = settings.kafka.sasl_username
    if not principal:
        return name
    prefix = subscriber_group_prefix(principal)
    return name if name.startswith(prefix) else f"{prefix}{name}"


class AlertSubscription:
    """An iterator of the alerts a subscriber may and wants to see; see the module doc."""

    def __init__(self, settings: Settings, wanted: AlertFilter, *, desks: Sequence[str] = (),
                 group: str | None = None, start: StartAt = FROM_COMMITTED, follow: bool = False,
                 codec: Codec | None = None, warn: Callable[[str], None] | None = None,
                 poll_s: float = 0.5) -> None:
        self.wanted = wanted
        self.allowed = settings.access.alerts_allowed_accounts
        for desk in desks:
            identifier(desk, dash=True)
        self.group = subscriber_group(settings, group or default_group(wanted, desks))
        self.topics = ([settings.desk_topic(d) for d in sorted(set(desks))] if desks
                       else [settings.topic(TOPIC_ALERTS)])
        self._principal = settings.kafka.sasl_username or "ANONYMOUS"
        self._since_ms = start.ts_ms if start.kind == "time" else None
        self._codec = codec or codec_for(settings)
        self._warn = warn or log.warning
        self._reader = GroupReader(settings.kafka_config(), self.topics, self.group, start=start,
                                   follow=follow, poll_s=poll_s)
        self._messages: Iterator[Message] | None = None
        self._last: Message | None = None
        self._closed = False
        self.skipped_undecodable = 0

    def __enter__(self) -> AlertSubscription:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Leaving on an exception: the last alert may not have been handled; keep it.
        self.close(commit_last=kind is None)

    def __iter__(self) -> AlertSubscription:
        return self

    def _refused(self, exc: TopicAccessError) -> AccessDeniedError:
        """The broker's refusal as one line naming the ACL this principal lacks."""
        what = str(exc)
        operation, _, resource = what.partition(" on ")
        return AccessDeniedError(
            f"Kafka refuses {what} to User:{self._principal}: missing ACL (ALLOW "
            f"User:{self._principal} {operation} on {resource}); a subscriber reads its desks "
            "(--desk) and its own groups, as TAPEFLOW_ACCESS_SUBSCRIBERS grants "
            "(docs/security.md)")

    def __next__(self) -> RiskAlert:
        if self._closed:
            raise StopIteration
        try:
            return self._next()
        except TopicAccessError as exc:
            self._closed = True
            self._reader.close()
            raise self._refused(exc) from None

    def _next(self) -> RiskAlert:
        if self._messages is None:
            try:
                self._messages = self._reader.open().messages()
            except LookupError as exc:
                self.close()
                raise StoreUnavailableError(str(exc)) from None
        self._ack()
        for msg in self._messages:
            alert = self._decode(msg)
            if alert is not None and self._wanted(msg, alert):
                self._last = msg
                return alert
            self._reader.done(msg)
        self.close()
        raise StopIteration

    def _ack(self) -> None:
        if self._last is not None:
            self._reader.done(self._last)
            self._last = None
            self._reader.commit()

    def _wanted(self, msg: Message, alert: RiskAlert) -> bool:
        if self._since_ms is not None:
            kind, ts_ms = msg.timestamp()
            # offsets_for_times found the first record at/after the time; a producer's clock
            # may still put an earlier timestamp after it, which `--start` excludes too.
            if kind != TIMESTAMP_NOT_AVAILABLE and ts_ms < self._since_ms:
                return False
        return delivered(alert, self.wanted, self.allowed)

    def _decode(self, msg: Message) -> RiskAlert | None:
        try:
            alert: RiskAlert = self._codec.decode(msg.value() or b"", expect="RiskAlert")
            return alert
        except DecodeError as exc:
            self.skipped_undecodable += 1
            self._warn(f"tapeflow alerts: skipped an undecodable record at "
                       f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}")
            return None

    def close(self, *, commit_last: bool = True) -> None:
        """Commit what was handled (the last alert too unless `commit_last` is False), then
        release the consumer. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._messages is None:
            self._reader.close()
            return
        try:
            if commit_last:
                self._ack()
            self._reader.commit()
        except TopicAccessError as exc:
            raise self._refused(exc) from None
        finally:
            self._reader.close()


def subscribe(settings: Settings, wanted: AlertFilter | None = None, *,
              desks: Sequence[str] = (), group: str | None = None,
              start: StartAt = FROM_COMMITTED, follow: bool = False,
              codec: Codec | None = None, warn: Callable[[str], None] | None = None
              ) -> AlertSubscription:
    """Alerts matching `wanted`, within the configured accounts, from `risk.alerts`, or from
    the alert topics of `desks` (what a desk's principal may read; docs/security.md).
    `group` is named under the subscriber's principal (`subscriber_group`).

    `start`: the group's committed position (default; a new group starts at the end), or
    `StartAt("beginning")`, or `StartAt("time", ts_ms=...)` (Kafka record time, ms since the
    epoch). Without `follow` the iterator ends at the end of what the topic holds when it
    starts; with it, it waits for new alerts.
    """
    return AlertSubscription(settings, wanted or AlertFilter(), desks=desks, group=group,
                             start=start, follow=follow, codec=codec, warn=warn)
