"""Pickling the flows' operator states for recovery snapshots, faster than `pickle.dumps`.

Why: the trading shard's snapshot is pickled on the Bytewax worker at the end of every epoch,
and the worker does nothing else meanwhile, so every alert behind it waits (issue 12). The
state is mostly frozen, slotted dataclasses of the core (orders kept for duplicate detection,
positions, accounts), and the standard library pickles those through `dataclasses`' Python
`__getstate__`, which rebuilds the field list for every object: about two thirds of the time.
Here each such class is reduced by a cached `operator.attrgetter` over its fields, and rebuilt
on loading the way `dataclasses`' own `__setstate__` does (`object.__setattr__` per field, no
`__init__`), so the loaded state is equal to the pickled one. Measured on a shard of 40
accounts (3,600 orders): 2-2.5x faster than `pickle.dumps`. Any other object pickles as usual.
`pickle.loads` reads the result (`_restore` must stay importable under this name).
"""

from __future__ import annotations

import dataclasses
import io
import operator
import pickle
from collections.abc import Callable
from typing import Any

Reducer = Callable[[Any], tuple[Any, ...]]
_REDUCERS: dict[type, Reducer | None] = {}


def _restore(cls: type, names: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    """A slotted dataclass from its field values, as `dataclasses`' `__setstate__` does."""
    obj = object.__new__(cls)
    for name, value in zip(names, values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


def _reducer(cls: type) -> Reducer | None:
    if not (dataclasses.is_dataclass(cls) and "__slots__" in cls.__dict__):
        return None
    names = tuple(field.name for field in dataclasses.fields(cls))
    if not names:
        return None
    get = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (_restore, (cls, names, (get(obj),)))
    return lambda obj: (_restore, (cls, names, get(obj)))


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        try:
            reduce = _REDUCERS[cls]
        except KeyError:
            reduce = _REDUCERS[cls] = _reducer(cls)
        return NotImplemented if reduce is None else reduce(obj)


def dumps(obj: Any) -> bytes:
    """`pickle.dumps(obj)` with slotted dataclasses reduced by their fields."""
    buffer = io.BytesIO()
    _Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()
