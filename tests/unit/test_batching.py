"""The shared batching mechanism: policy validation, the size and age bounds with an injected
clock, the retry loop (tries, backoff bounds, give-up and permanent failures) with an injected
sleep, and the context manager."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tenacity import RetryCallState

from sinks.batching import BatchPolicy, BatchWriter, Failure, call_with_retries


class TransientError(Exception):
    pass


class PermanentError(Exception):
    pass


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TransientError)


class ListWriter(BatchWriter):
    """The smallest writer: one list buffer, written by `sink` under retries."""

    def __init__(self, policy: BatchPolicy, **kwargs: Any) -> None:
        super().__init__(policy, **kwargs)
        self.buffer: list[int] = []
        self.written: list[list[int]] = []
        self.failures: list[BaseException] = []  # raised by `sink`, first in first out
        self.logged: list[tuple[int, str]] = []
        self.abandoned = 0

    @property
    def pending(self) -> int:
        return len(self.buffer)

    def add(self, item: int, now: float | None = None) -> int:
        self.buffer.append(item)
        self._started(now)
        return self.flush_if_due(now)

    def flush(self) -> int:
        if not self.buffer:
            self._flushed()
            return 0
        failure = self._with_retries(_is_transient, self._sink, list(self.buffer))
        if failure is not None:
            raise RuntimeError(f"gave up: {failure}") from failure.error
        count = len(self.buffer)
        self.buffer.clear()
        self._flushed()
        self.rows_written += count
        self.batches_written += 1
        return count

    def _sink(self, rows: list[int]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.written.append(rows)

    def _abandon(self) -> None:
        self.abandoned += 1

    def _log_retry(self, state: RetryCallState, exc: BaseException | None) -> None:
        self.logged.append((state.attempt_number, str(exc)))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_rows": 0}, "max_rows must be at least 1"),
    ({"max_rows": 1, "max_age_s": -0.001}, "max_age_s must not be negative"),
    ({"max_rows": 1, "attempts": 0}, "attempts must be at least 1"),
])
def test_policy_refuses_impossible_bounds(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchPolicy(**kwargs)


def test_policy_defaults_edges_and_immutability() -> None:
    policy = BatchPolicy(1, max_age_s=0, attempts=1)
    assert (policy.max_rows, policy.max_age_s, policy.attempts) == (1, 0, 1)
    assert (BatchPolicy(7).backoff_s, BatchPolicy(7).max_backoff_s) == (0.2, 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_rows = 2  # type: ignore[misc]


def test_due_by_size() -> None:
    writer = ListWriter(BatchPolicy(3, max_age_s=3600), clock=lambda: 0.0)
    assert not writer.due()
    assert writer.add(1) == 0 and writer.add(2) == 0
    assert (writer.pending, writer.max_rows) == (2, 3)
    assert writer.add(3) == 3
    assert (writer.pending, writer.written, writer.batches_written) == (0, [[1, 2, 3]], 1)
    assert not writer.due()


def test_due_by_age_of_the_oldest_row_with_an_injected_clock() -> None:
    clock = [100.0]
    writer = ListWriter(BatchPolicy(1000, max_age_s=5.0), clock=lambda: clock[0])
    assert not writer.due()  # nothing buffered: never due, however late
    writer.add(1)
    clock[0] = 104.0
    assert writer.add(2) == 0  # the oldest row sets the age, not the newest
    clock[0] = 104.9
    assert not writer.due() and writer.flush_if_due() == 0
    clock[0] = 105.0
    assert writer.due() and writer.flush_if_due() == 2
    assert not writer.due()  # the clock stops with an empty buffer
    writer.add(3)  # and restarts at the next row
    assert not writer.due(now=109.9) and writer.due(now=110.0)  # `now` overrides the clock


def test_age_zero_flushes_every_row() -> None:
    writer = ListWriter(BatchPolicy(1000, max_age_s=0), clock=lambda: 0.0)
    assert writer.add(1) == 1 and writer.add(2) == 1


def test_transient_errors_are_retried_with_bounded_backoff_then_succeed() -> None:
    sleeps: list[float] = []
    policy = BatchPolicy(10, attempts=5, backoff_s=0.1, max_backoff_s=0.3)
    writer = ListWriter(policy, sleep=sleeps.append)
    writer.failures = [TransientError(f"t{i}") for i in range(4)]
    writer.buffer = [1]
    assert writer.flush() == 1
    assert writer.written == [[1]] and writer.retries == 4 == len(sleeps)
    assert writer.logged == [(1, "t0"), (2, "t1"), (3, "t2"), (4, "t3")]
    # After try n: min(0.1 * 2**(n-1), 0.3) plus up to 0.1 of jitter.
    for n, slept in enumerate(sleeps, start=1):
        base = min(0.1 * 2 ** (n - 1), 0.3)
        assert base <= slept <= base + 0.1 + 1e-9, (n, slept)


def test_giving_up_after_attempts_reports_the_last_transient_error() -> None:
    sleeps: list[float] = []
    writer = ListWriter(BatchPolicy(10, attempts=3, backoff_s=0.01), sleep=sleeps.append)
    writer.failures = [TransientError(f"t{i}") for i in range(4)]
    writer.buffer = [1, 2]
    with pytest.raises(RuntimeError, match="gave up") as info:
        writer.flush()
    assert str(info.value.__cause__) == "t2"
    assert (writer.retries, len(sleeps), writer.pending, writer.written) == (2, 2, 2, [])
    assert writer.flush() == 2  # the rows stayed buffered; t3 is retried away


def test_call_with_retries_outcomes() -> None:
    policy = BatchPolicy(1, attempts=3, backoff_s=0)
    sleeps: list[float] = []
    calls: list[int] = []

    def failing(exc: Exception) -> None:
        calls.append(1)
        raise exc

    retrying = policy.retrying(_is_transient, sleep=sleeps.append)
    gave_up = call_with_retries(retrying, failing, TransientError("busy"))
    assert gave_up is not None and (gave_up.attempts, gave_up.transient) == (3, True)
    assert str(gave_up.error) == "busy" and len(calls) == 3 and sleeps == [0, 0]

    calls.clear()
    error = PermanentError("bad value")
    stopped = call_with_retries(policy.retrying(_is_transient, sleep=sleeps.append), failing,
                                error)
    assert stopped == Failure(error, 1, False) and len(calls) == 1 and len(sleeps) == 2

    assert call_with_retries(policy.retrying(_is_transient), lambda: None) is None


def test_a_permanent_error_after_transient_ones_reports_its_attempt() -> None:
    writer = ListWriter(BatchPolicy(10, attempts=5, backoff_s=0), sleep=lambda _s: None)
    writer.failures = [TransientError("t0"), PermanentError("p")]
    writer.buffer = [1]
    with pytest.raises(RuntimeError, match="attempts=2, transient=False"):
        writer.flush()
    assert writer.retries == 1 and writer.pending == 1


def test_context_manager_closes_on_success_and_abandons_on_error() -> None:
    with ListWriter(BatchPolicy(10, max_age_s=60), clock=lambda: 0.0) as writer:
        writer.add(1)
    assert (writer.written, writer.abandoned) == ([[1]], 0)

    with pytest.raises(KeyError), ListWriter(BatchPolicy(10, max_age_s=60),
                                              clock=lambda: 0.0) as failed:
        failed.add(2)
        raise KeyError("boom")
    assert (failed.written, failed.pending, failed.abandoned) == ([], 1, 1)


def test_a_deadline_retries_transient_errors_until_the_first_failure_is_that_old() -> None:
    # The streaming policy: no attempt count, a deadline on the injected clock; the sleeps
    # move the clock, so 30 s of outage passes instantly.
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    policy = BatchPolicy(10, attempts=1, backoff_s=0.5, max_backoff_s=4.0, deadline_s=60.0)
    writer = ListWriter(policy, clock=lambda: clock[0], sleep=sleep)
    writer.failures = [TransientError(f"t{i}") for i in range(12)]  # ~30 s of failures
    writer.buffer = [1, 2]
    assert writer.flush() == 2  # attempts=1 is not the bound: the deadline is
    assert writer.retries == 12 and writer.written == [[1, 2]]
    assert 20 < clock[0] < 60 and max(sleeps) <= 4.0 + 0.5

    # Failing for longer than the deadline: gives up with the last transient error, rows kept.
    clock[0], sleeps[:] = 0.0, []
    writer.failures = [TransientError(f"u{i}") for i in range(100)]
    writer.buffer = [3]
    with pytest.raises(RuntimeError, match="transient=True") as info:
        writer.flush()
    assert 60 <= clock[0] < 60 + 4.5 + 4.5, clock[0]
    assert writer.pending == 1 and str(info.value.__cause__).startswith("u")


def test_a_deadline_does_not_retry_a_permanent_error() -> None:
    writer = ListWriter(BatchPolicy(10, deadline_s=600.0), sleep=lambda _s: None)
    writer.failures = [PermanentError("no such table")]
    writer.buffer = [1]
    with pytest.raises(RuntimeError, match="attempts=1, transient=False"):
        writer.flush()
    assert writer.retries == 0 and writer.pending == 1


def test_policy_refuses_a_negative_deadline() -> None:
    with pytest.raises(ValueError, match="deadline_s must not be negative"):
        BatchPolicy(1, deadline_s=-1.0)
