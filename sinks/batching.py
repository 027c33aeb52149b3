"""What the batching store writers share: the bounds of a batch, the retry schedule, the age clock.

`BatchPolicy` holds the validated numbers: a batch is written when `max_rows` are pending (size
bound) or when the oldest pending row is `max_age_s` old (time bound); a write failing on a
transient error is tried again with exponential backoff from `backoff_s` capped at
`max_backoff_s`, plus up to `backoff_s` of jitter (tenacity), up to `attempts` tries, or, when
`deadline_s` is set, for as long as the first failure is less than `deadline_s` old. The
schedule itself is `tapeflow.services.retry.RetryPolicy`, shared with the schema registry
lookups, which wait through an outage the same way (`schemas.catalogue`).

Why a deadline for streaming sinks (docs/faults.md): a flow's sink that gives up after a few
seconds raises, and one exception kills the dataflow, so a store restarting for 20 s would stop
every flow. A sink that drops the batch instead would lose rows. So a streaming sink blocks on a
failing write (the whole worker waits: nothing is read, nothing snapshotted past it) and keeps
retrying connection-level errors until `deadline_s` (setting `sink_retry_deadline_s`, 10 min by
default); only then does it raise, the flow stops with that error, and a restart with recovery
replays from the last snapshot. Batch jobs keep the short `attempts` bound.

`BatchWriter` is the mechanism around a writer's own buffers: the oldest-row clock (`due`,
`flush_if_due`; time is the injected clock unless the caller passes `now`), the counters, the
retry loop that counts and logs each retry, and the context manager (write what is pending on a
clean exit; on an error leave it unwritten, because the replay will bring it again). What a
writer buffers and how it writes a batch stay in the writer (`sinks.clickhouse.writer`,
`sinks.postgres.writer`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, Self

from tenacity import RetryCallState, Retrying

from sinks.metrics import record_batch, record_retry
from tapeflow.services.retry import Failure, RetryPolicy, call_with_retries

__all__ = ["BatchPolicy", "BatchWriter", "Failure", "call_with_retries"]

P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batch is due and how its write is retried."""

    max_rows: int
    max_age_s: float = 1.0
    attempts: int = 5
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    deadline_s: float | None = None
    """Set: retry transient errors until the first failure is this old (`attempts` unused)."""

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        if self.max_age_s < 0:
            raise ValueError("max_age_s must not be negative")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.deadline_s is not None and self.deadline_s < 0:
            raise ValueError("deadline_s must not be negative")

    @property
    def retry(self) -> RetryPolicy:
        """The retry schedule alone (`tapeflow.services.retry`, shared with the registry)."""
        return RetryPolicy(self.attempts, self.backoff_s, self.max_backoff_s, self.deadline_s)

    def retrying(
        self,
        is_transient: Callable[[BaseException], bool],
        before_sleep: Callable[[RetryCallState], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Retrying:
        """`RetryPolicy.retrying` of this policy's schedule."""
        return self.retry.retrying(is_transient, before_sleep, sleep, clock)


class BatchWriter(ABC):
    """A writer that buffers rows and writes them in batches under a `BatchPolicy`.

    A subclass keeps its buffers, reports them in `pending`, writes them in `flush` (through
    `_with_retries`), calls `_started(now)` whenever it buffers a row, and says how a retry is
    logged in `_log_retry`. `metrics_store` names it in the metrics (sinks/metrics.py).
    """

    metrics_store = "store"

    def __init__(self, policy: BatchPolicy, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._oldest: float | None = None
        self.rows_written = 0
        self.batches_written = 0
        self.retries = 0

    @property
    def max_rows(self) -> int:
        return self.policy.max_rows

    @property
    def max_age_s(self) -> float:
        return self.policy.max_age_s

    @property
    def attempts(self) -> int:
        return self.policy.attempts

    def retry_bound(self) -> str:
        """How long this writer keeps trying, for log lines."""
        return self.policy.retry.bound()

    @property
    @abstractmethod
    def pending(self) -> int:
        """Rows buffered and not yet written."""

    @abstractmethod
    def flush(self) -> int:
        """Write every buffered row; returns the rows written. Must call `_flushed` once the
        buffers are empty."""

    def close(self) -> None:
        """Write whatever is pending."""
        self.flush()

    def due(self, now: float | None = None) -> bool:
        """Whether a bound is reached: `max_rows` pending, or the oldest row `max_age_s` old."""
        # On every `add`, so kept cheap: the policy's fields, not the properties, and no `_now`.
        oldest = self._oldest
        if oldest is None:
            return False
        policy = self.policy
        if self.pending >= policy.max_rows:
            return True
        return (self._clock() if now is None else now) - oldest >= policy.max_age_s

    def flush_if_due(self, now: float | None = None) -> int:
        """Flush when `due`; call it when idle so a quiet stream still lands in time."""
        return self.flush() if self.due(now) else 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # On an error the rows stay unwritten on purpose: the replay will bring them again.
        if exc_type is None:
            self.close()
        else:
            self._abandon()

    def _abandon(self) -> None:
        """Release what the writer holds when leaving on an error, writing nothing (by default
        there is nothing to release)."""
        return

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _started(self, now: float | None) -> None:
        """A row was buffered: start the age clock if it is not running."""
        if self._oldest is None:
            self._oldest = self._now(now)

    def _flushed(self) -> None:
        """The buffers are empty: stop the age clock."""
        self._oldest = None

    def _with_retries(self, is_transient: Callable[[BaseException], bool],
                      fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs
                      ) -> Failure | None:
        """Run `fn` under the policy's retries, counting and logging each retry."""
        retrying = self.policy.retrying(is_transient, self._before_retry, self._sleep,
                                        self._clock)
        return call_with_retries(retrying, fn, *args, **kwargs)

    def _record_batch(self, table: str, rows: int, started: float) -> None:
        """A batch of `rows` went into `table`; `started` is its `time.perf_counter()`."""
        record_batch(self.metrics_store, table, rows, time.perf_counter() - started)

    def _before_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        record_retry(self.metrics_store)
        self._log_retry(state, state.outcome.exception() if state.outcome else None)

    @abstractmethod
    def _log_retry(self, state: RetryCallState, exc: BaseException | None) -> None:
        """Log one failed try that is about to be retried."""
