"""The one retry schedule of everything that waits for a service: store writers and the registry.

Why shared: a flow must wait through a store outage and a schema registry outage alike, for
as long as the operator allowed (`sink_retry_deadline_s`), with the same backoff, so both the
sinks (`sinks/batching.py`) and the schema catalogue (`schemas/catalogue.py`) take their
schedule from here. It sits below sources, sinks and schemas, which never import each other.

`RetryPolicy`: a call failing on a transient error is tried again with exponential backoff
from `backoff_s` capped at `max_backoff_s`, plus up to `backoff_s` of jitter (tenacity), up to
`attempts` tries, or, when `deadline_s` is set, for as long as the first failure is less than
`deadline_s` old. Streams set a deadline (blocking beats raising: one exception kills a
dataflow); batch jobs keep the short `attempts` bound. docs/faults.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failing call is tried again."""

    attempts: int = 5
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    deadline_s: float | None = None
    """Set: retry transient errors until the first failure is this old (`attempts` unused)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.deadline_s is not None and self.deadline_s < 0:
            raise ValueError("deadline_s must not be negative")

    def bound(self) -> str:
        """How long this policy keeps trying, for log lines."""
        if self.deadline_s is None:
            return f"gives up after {self.attempts} attempts"
        return f"gives up {self.deadline_s:g} s after the first failure"

    def retrying(
        self,
        is_transient: Callable[[BaseException], bool],
        before_sleep: Callable[[RetryCallState], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Retrying:
        """A tenacity loop: `attempts` tries (or tries until `deadline_s` after the first
        failure, measured on `clock`) while `is_transient` says the error is, sleeping
        min(backoff_s * 2**(n-1), max_backoff_s) plus up to backoff_s of jitter after try n."""
        return Retrying(
            stop=(stop_after_attempt(self.attempts) if self.deadline_s is None
                  else StopAfterDeadline(self.deadline_s, clock)),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s)
            + wait_random(0, self.backoff_s),
            retry=retry_if_exception(is_transient),
            sleep=sleep,
            before_sleep=before_sleep,
        )


class StopAfterDeadline:
    """tenacity stop: once `deadline_s` have passed since the first failure, on `clock` (an
    injected clock, unlike tenacity's `stop_after_delay`, so tests need not wait)."""

    def __init__(self, deadline_s: float, clock: Callable[[], float]) -> None:
        self.deadline_s = deadline_s
        self._clock = clock
        self._first: float | None = None

    def __call__(self, state: RetryCallState) -> bool:
        now = self._clock()
        if self._first is None or state.attempt_number == 1:
            self._first = now
        return now - self._first >= self.deadline_s


@dataclass(frozen=True, slots=True)
class Failure:
    """A call that did not succeed: the last error, the tries made, and whether it gave up on
    transient errors (True) or stopped at an error no retry can fix (False)."""

    error: BaseException | None
    attempts: int
    transient: bool


def call_with_retries(retrying: Retrying, fn: Callable[P, object], *args: P.args,
                      **kwargs: P.kwargs) -> Failure | None:
    """Run `fn` under `retrying`; None when it succeeded, else the `Failure` to report."""
    try:
        retrying(fn, *args, **kwargs)
    except RetryError as exc:
        last = exc.last_attempt
        return Failure(last.exception(), last.attempt_number, True)
    except Exception as exc:
        return Failure(exc, retrying.statistics.get("attempt_number", 1), False)
    return None
