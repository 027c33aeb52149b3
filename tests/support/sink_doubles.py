"""Stand-ins for a batching writer and a dead-letter output, for the sink partition tests
(tests/unit/test_writer_partition.py, tests/unit/test_isolation.py). The real writers and
producer are exercised through the real stores in tests/integration/test_poison_rows.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class WriteError(RuntimeError):
    def __init__(self, message: str, *, transient: bool, refused_value: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.refused_value = refused_value


class FailingWriter:
    """Holds rows; every flush fails with `error` while it is set, and a flush holding a row
    in `poison` fails as a store refusing a value does (all or nothing, like a transaction)."""

    def __init__(self, error: WriteError | None, *, due_every: int = 1,
                 poison: frozenset[Any] = frozenset()) -> None:
        self.error = error
        self.due_every = due_every
        self.poison = poison
        self.rows: list[Any] = []
        self.written: list[Any] = []
        self.flushes = 0
        self.closed = 0

    def buffer(self, table: str, row: Any) -> None:
        self.rows.append((table, row))

    def discard(self) -> None:
        self.rows = []

    def flush_if_due(self) -> int:
        return self.flush() if len(self.rows) >= self.due_every else 0

    def flush(self) -> int:
        if not self.rows:
            return 0
        self.flushes += 1
        if self.error is not None:
            raise self.error
        bad = [row for _, row in self.rows if row in self.poison]
        if bad:
            raise WriteError(f"value {bad[0]!r} refused", transient=False,
                             refused_value=True) from ValueError(f"NUL in {bad[0]!r}")
        count = len(self.rows)
        self.written += self.rows
        self.rows = []
        return count

    def close(self) -> None:
        self.closed += 1
        self.flush()


State = tuple[str, int, str]
"""(key, version, value): a state of a key, as the trading core emits them."""


class LatestWriter:
    """A writer that keeps the latest state per key and maps it at the flush, like the
    trading writers (`PostgresWriter.buffer_output`): a value in `unmappable` is left out at the
    flush and handed to `on_unmapped`; a flush holding a value in `poison` is refused as a
    whole; a written state replaces the stored one only when its version is higher (the
    store's version guard)."""

    def __init__(self, poison: frozenset[str] = frozenset(),
                 unmappable: frozenset[str] = frozenset(), due_every: int = 10**9) -> None:
        self.poison = poison
        self.unmappable = unmappable
        self.due_every = due_every
        self.held: dict[str, State] = {}
        self.stored: dict[str, State] = {}
        self.on_unmapped: Callable[[Any, Exception], None] = lambda state, exc: None
        self.flushes = 0

    def buffer_state(self, state: State) -> None:
        held = self.held.get(state[0])
        if held is None or state[1] > held[1]:
            self.held[state[0]] = state

    def discard(self) -> None:
        self.held = {}

    def flush_if_due(self) -> int:
        return self.flush() if len(self.held) >= self.due_every else 0

    def flush(self) -> int:
        if not self.held:
            return 0
        self.flushes += 1
        for key, state in list(self.held.items()):
            if state[2] in self.unmappable:
                del self.held[key]
                self.on_unmapped(state, TypeError(f"{state[2]} does not fit"))
        bad = [state for state in self.held.values() if state[2] in self.poison]
        if bad:
            raise WriteError(f"{bad[0]} refused", transient=False,
                             refused_value=True) from ValueError(f"NUL in {bad[0][2]}")
        for key, state in self.held.items():
            stored = self.stored.get(key)
            if stored is None or state[1] > stored[1]:
                self.stored[key] = state
        count, self.held = len(self.held), {}
        return count

    def close(self) -> None:
        self.flush()


class Letters:
    """A dead-letter output that remembers what it was given and whether it was flushed."""

    def __init__(self) -> None:
        self.refused: list[tuple[list[Any], str]] = []
        self.unstorable: list[str] = []
        self.flushed = 0
        """How many letters were durable at the last flush."""

    def refused_rows(self, rows: Any, detail: str) -> None:
        self.refused.append((list(rows), detail))

    def unstorable_record(self, detail: str) -> None:
        self.unstorable.append(detail)

    def flush(self) -> None:
        self.flushed = len(self.refused) + len(self.unstorable)  # letters made durable


class LettersOutput:
    def __init__(self, letters: Letters) -> None:
        self.refused = letters.refused_rows
        self.unstorable = letters.unstorable_record
        self.flush = letters.flush
