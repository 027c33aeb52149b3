"""Which risk alerts a subscriber receives: the user's filters and the configured restriction.

Pure, so the rule is the same for the CLI, the Python iterator and the tests, and is tested
without a broker.

Two layers, deliberately separate:

- `AlertFilter` is what the subscriber *asks* for (`--account`, `--symbol`, `--rule`,
  `--severity`). Within one field the values are alternatives (any of them matches); the
  fields combine with AND. An empty field does not restrict. `--severity` is a minimum:
  INFO < WARNING < CRITICAL.
- `allowed_accounts` is what the deployment *permits* (`Settings.alerts_allowed_accounts`).
  It is applied after the filter, whatever the filter says, so no flag can widen it: a
  subscriber allowed account A never receives B's alerts, even when it asks for B.

Alerts without an account (feed sequence gaps belong to the market, not to an account) match
a filter with no `--account`, and never match one with accounts. A subscriber restricted to
some accounts never receives them: least privilege, a restriction lists what may be seen, and
"no account" is not on the list. Deployments that want market-wide alerts for such a desk
run an unrestricted subscriber for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from tapeflow.core.models import RiskAlert, Severity


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What a subscriber asks for; empty sets and None mean "any"."""

    accounts: frozenset[str] = field(default_factory=frozenset)
    symbols: frozenset[str] = field(default_factory=frozenset)
    rules: frozenset[str] = field(default_factory=frozenset)
    min_severity: Severity = Severity.INFO

    @classmethod
    def of(cls, *, accounts: Iterable[str] = (), symbols: Iterable[str] = (),
           rules: Iterable[str] = (), min_severity: Severity | str = Severity.INFO
           ) -> AlertFilter:
        """Build from any iterables (CLI lists); severity by name, case-insensitive."""
        severity = Severity(min_severity.upper()) if isinstance(min_severity, str) else min_severity
        return cls(frozenset(accounts), frozenset(symbols), frozenset(rules), severity)

    def matches(self, alert: RiskAlert) -> bool:
        if self.accounts and alert.account_id not in self.accounts:
            return False
        if self.symbols and alert.symbol not in self.symbols:
            return False
        if self.rules and alert.rule not in self.rules:
            return False
        return alert.severity.rank >= self.min_severity.rank

    def digest(self) -> str:
        """A short stable fingerprint (8 hex digits): the same filters, the same digest, in
        any order and in any process. Used to name a subscriber's default consumer group."""
        parts = ["\x1f".join(sorted(values))
                 for values in (self.accounts, self.symbols, self.rules)]
        parts.append(str(self.min_severity))
        return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:8]


def permitted(alert: RiskAlert, allowed_accounts: frozenset[str] | None) -> bool:
    """Whether a subscriber restricted to `allowed_accounts` (None: unrestricted) may see it."""
    return permitted_account(alert.account_id, allowed_accounts)


def permitted_account(account_id: str | None, allowed_accounts: frozenset[str] | None) -> bool:
    """The rule itself, on an account (None: the event has none): also what a live-view
    viewer may see of rows and events (`tapeflow.web.access`)."""
    if allowed_accounts is None:
        return True
    return account_id is not None and account_id in allowed_accounts


def delivered(alert: RiskAlert, wanted: AlertFilter,
              allowed_accounts: frozenset[str] | None) -> bool:
    """The one decision: permitted by configuration AND asked for by the filter."""
    return permitted(alert, allowed_accounts) and wanted.matches(alert)


def refused_accounts(wanted: AlertFilter, allowed_accounts: frozenset[str] | None
                     ) -> frozenset[str]:
    """Accounts the filter asks for that the configuration does not allow (they would never
    match; the CLI says so instead of waiting silently)."""
    if allowed_accounts is None:
        return frozenset()
    return wanted.accounts - allowed_accounts
