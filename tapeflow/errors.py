"""Tapeflow's error family: one base, user errors, and store errors by whether a retry helps.

```
TapeflowError                       anything Tapeflow raises on purpose
├── UserError                       the user can fix it: one line on the command line
└── StoreError                      a store or broker refused or did not answer
    ├── TransientStoreError         a retry may succeed (connection lost, timeout)
    │   └── StoreUnavailableError   did not answer at all: names the store and where
    └── PermanentStoreError         no retry fixes it (a missing table, a refused value)
```

The command line (`tapeflow.cli`) turns every `UserError` and `StoreError` into
`tapeflow: error: <message>` and exit code 2; anything else is a bug and keeps its traceback.
Module-specific errors subclass one of these (and a builtin such as `ValueError` where callers
already catch that), so a caller can catch the family without listing its members.
"""

from __future__ import annotations

from tapeflow.core.errors import TapeflowError, UserError

__all__ = [
    "PermanentStoreError",
    "StoreError",
    "StoreUnavailableError",
    "TapeflowError",
    "TransientStoreError",
    "UserError",
]


class StoreError(TapeflowError):
    """A store (ClickHouse, Postgres) or the broker refused a request or did not answer."""


class TransientStoreError(StoreError):
    """A failure a later attempt may not repeat: the writers retry these until a deadline."""


class StoreUnavailableError(TransientStoreError):
    """A store did not answer; the message names which one and where (never a password)."""


class PermanentStoreError(StoreError):
    """A refusal no retry fixes: a missing table, a value the column cannot hold."""
