"""Stand-ins for a batching writer and a dead-letter output, for the sink partition tests
(tests/unit/test_writer_partition.py). The real writers and producer are exercised through the
real stores in tests/integration/test_poison_rows.py."""

from __future__ import annotations

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
