"""The trading flow's read-only configuration from Postgres, refreshed while it runs.

`load_trading_config(conn)` reads `risk_limits` (+ `risk_symbol_limits`), `instruments`
(session hours) and `account_currencies` into a
`tapeflow.core.trading.account_step.TradingConfig`. `RefreshingConfig` holds the current one
and reloads it every `every_s` seconds of wall time when asked (`current()`, on a thread of its
own), so an operator's change to a limit takes effect within that period without a restart.

A failed reload (store down, a bad row) is logged and the previous configuration stays: a
running flow keeps judging with the last good limits rather than stopping or guessing. The
first load is not forgiving: without limits the flow does not start.

Determinism: limits are configuration, not state; they are not in the recovery snapshots.
Which reports are judged by the old or the new limits depends on when the reload happened,
so a replay after a change judges the replayed reports by the limits current at replay time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sources.postgres.reference import (
    load_account_currencies,
    load_instruments,
    load_risk_limits,
)
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.services.postgres import connect_postgres

log = logging.getLogger("tapeflow.sinks.limits")


def load_trading_config(conn: Any) -> TradingConfig:
    """Risk limits, session hours and account currencies as the trading core takes them."""
    limits = load_risk_limits(conn)
    sessions = {symbol: inst.session_hours() for symbol, inst in load_instruments(conn).items()}
    return TradingConfig(limits=limits, sessions=sessions,
                         currencies=load_account_currencies(conn))


def postgres_loader(dsn: str, schema: str, connect_timeout: int = 5
                    ) -> Callable[[], TradingConfig]:
    """A loader that opens a short-lived connection per load."""

    def load() -> TradingConfig:
        with connect_postgres(dsn, schema, autocommit=True,
                              connect_timeout=connect_timeout) as conn:
            return load_trading_config(conn)

    return load


class RefreshingConfig:
    """The current `TradingConfig`, reloaded every `every_s` seconds (monotonic clock).

    `background` (the default): a due reload runs on a thread of its own and `current()` keeps
    returning the previous configuration until it is done, so the flow's worker, which asks
    for the configuration on every event, never waits for Postgres (a reload is a connection
    and a few queries; in an outage, the connect timeout); the new limits apply from the
    first event after the load. `background=False` reloads in the caller (tests)."""

    def __init__(self, load: Callable[[], TradingConfig], every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, *,
                 background: bool = True) -> None:
        self._load = load
        self._every_s = every_s
        self._clock = clock
        self._background = background
        self._lock = threading.Lock()
        self._loading = False
        self._config = load()
        self._next = clock() + every_s
        self.reloads = 0
        self.failures = 0

    @classmethod
    def fixed(cls, config: TradingConfig) -> RefreshingConfig:
        """A configuration that never changes (tests, replays with given limits)."""
        return cls(lambda: config, every_s=float("inf"))

    def current(self) -> TradingConfig:
        if self._clock() < self._next or self._loading:
            return self._config
        with self._lock:
            if self._clock() >= self._next and not self._loading:
                self._next = self._clock() + self._every_s
                if self._background:
                    self._loading = True
                    threading.Thread(target=self._reload, name="tapeflow-limits",
                                     daemon=True).start()
                else:
                    self._reload()
        return self._config

    def _reload(self) -> None:
        try:
            self._config = self._load()
            self.reloads += 1
        except Exception as exc:
            self.failures += 1
            log.warning("risk limits not reloaded, keeping the previous ones: %s", exc)
        finally:
            self._loading = False
