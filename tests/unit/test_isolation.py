"""Isolation of refused records with a writer that keeps the latest state per key
(sinks/isolation.py, as the trading flow's Postgres and ClickHouse writers do), on both sink
partitions.

Re-buffering a subset of the pending records coalesces it again, so the halves of a bisection
may write an older state of a key after a newer one, or an older state while the newest is
refused. The property that must hold whatever the order, the keys and the refused states
(hypothesis): the store ends exactly as writing every state but the refused ones, one by one
under the version guard, would leave it (the highest such version per key); every letter is a
refused state, at most one per state, durable when the checkpoint returns; the refused states
that were their key's latest at the flush are all among them. A refused state that a good one
replaced before the flush is never sent, so not lettered (the table ends the same as if it had
been refused). A state the writer can only find unmappable at its flush is one
`unstorable_value` letter, however often the isolation buffers it again.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.partition import BackgroundWriterPartition, WriterPartition
from tests.support.sink_doubles import LatestWriter, Letters, LettersOutput, State, WriteError

KEYS = "abcd"


def _rows(state: State) -> list[tuple[str, Any]]:
    return [("t", state)]


def _build(kind: str, writer: LatestWriter, letters: Letters
           ) -> WriterPartition | BackgroundWriterPartition:
    common: dict[str, Any] = {"store": "Store", "unmappable": (TypeError,),
                              "write_error": WriteError, "dead_letters": LettersOutput(letters)}
    if kind == "worker":
        return WriterPartition(_Adapter(writer), _rows, **common)
    return BackgroundWriterPartition(writer, writer.buffer_state, _rows, idle_s=0.01, **common)


class _Adapter:
    """The latest-state writer behind the (table, row) interface of `WriterPartition`."""

    def __init__(self, writer: LatestWriter) -> None:
        self._writer = writer
        self.buffer = lambda table, state: writer.buffer_state(state)
        self.discard, self.flush_if_due = writer.discard, writer.flush_if_due
        self.flush, self.close = writer.flush, writer.close


def _states(keys: list[str], bad: list[bool]) -> list[State]:
    """The i-th state of a key has version i; a bad one's value ends in '!'."""
    versions: dict[str, int] = {}
    out = []
    for key, refused in zip(keys, bad, strict=True):
        versions[key] = versions.get(key, 0) + 1
        out.append((key, versions[key], f"{key}{versions[key]}" + ("!" if refused else "")))
    return out


@st.composite
def _batches(draw: st.DrawFn) -> tuple[list[State], int]:
    n = draw(st.integers(1, 40))
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=n, max_size=n))
    bad = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return _states(keys, bad), draw(st.sampled_from([3, 10**9]))


def _check(kind: str, states: list[State], due_every: int) -> None:
    poison = frozenset(value for _, _, value in states if value.endswith("!"))
    writer = LatestWriter(poison, due_every=due_every)
    letters = Letters()
    part = _build(kind, writer, letters)
    part.write_batch(states)
    part.snapshot()
    reference: dict[str, State] = {}  # every good state, in order, under the version guard
    for state in states:
        if state[2] not in poison:
            reference[state[0]] = state
    assert writer.stored == reference
    lettered = [rows[0][1] for rows, _ in letters.refused]
    assert len(lettered) == len(set(lettered))  # one letter per refused state
    assert set(lettered) <= {s for s in states if s[2] in poison}
    if due_every > len(states):  # one flush: every refused latest state is lettered
        latest = {s[0]: s for s in states}
        assert {s for s in latest.values() if s[2] in poison} <= set(lettered)
    assert letters.flushed == len(lettered)  # durable when the checkpoint returned
    part.close()


@settings(max_examples=150, deadline=None)
@given(_batches())
def test_isolation_with_latest_state_writes_ends_as_every_state_writes(
        batch: tuple[list[State], int]) -> None:
    _check("worker", *batch)


@settings(max_examples=40, deadline=None)
@given(_batches())
def test_the_same_on_the_writer_thread(batch: tuple[list[State], int]) -> None:
    _check("background", *batch)


def test_a_state_unmappable_at_the_flush_is_one_letter_through_the_isolation() -> None:
    states = _states(list("abcab"), [False, False, False, False, True])  # b2! refused
    unmappable = "a2"  # a's latest state: found only when the writer maps it
    writer = LatestWriter(frozenset({"b2!"}), unmappable=frozenset({unmappable}))
    letters = Letters()
    part = _build("background", writer, letters)
    part.write_batch(states)
    part.snapshot()
    assert letters.unstorable == ["Store: a2 does not fit; record: ('a', 2, 'a2')"]
    assert [rows for rows, _ in letters.refused] == [[("t", ("b", 2, "b2!"))]]
    assert writer.stored == {"a": ("a", 1, "a1"), "b": ("b", 1, "b1"), "c": ("c", 1, "c1")}
    assert letters.flushed == 2
    part.close()
