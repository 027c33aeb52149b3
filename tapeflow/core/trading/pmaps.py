"""Two small persistent (copy-on-write) maps, so immutable state stays cheap to update.

Why: the trading state is immutable (each step returns a new state, old states stay valid),
and copying a plain dict of n orders on every report costs O(n): about 150 us per report
with a few thousand live orders, measured on the synthetic order flow. These structures
copy only a small part per update; both are plain tuples of dicts inside, so they pickle
(Bytewax snapshots) and compare by content.

* `ShardedMap`: str keys spread over 64 dicts by CRC-32 of the key (stable across
  processes, unlike `hash()`, which is salted per process and would break a restored
  snapshot). An update copies one shard: O(n/64 + 64).
* `GenerationLog`: an insertion-ordered map that is only appended to and trimmed from the
  old end, kept as generations of at most `generation_size` entries. Appending copies the
  newest generation; trimming drops whole generations (so a retention bound is met to
  within one generation, on the side of keeping more).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

V = TypeVar("V")

SHARDS = 64
_EMPTY_SHARDS: tuple[dict[str, Any], ...] = tuple({} for _ in range(SHARDS))


def _shard(key: str) -> int:
    return zlib.crc32(key.encode()) & (SHARDS - 1)


class ShardedMap(Mapping[str, V], Generic[V]):
    __slots__ = ("_len", "_shards")

    def __init__(self, items: Mapping[str, V] | None = None) -> None:
        shards: list[dict[str, V]] = [{} for _ in range(SHARDS)]
        for key, value in (items or {}).items():
            shards[_shard(key)][key] = value
        self._shards: tuple[dict[str, V], ...] = tuple(shards)
        self._len = sum(len(s) for s in shards)

    @classmethod
    def of(cls, items: Mapping[str, V]) -> ShardedMap[V]:
        return items if isinstance(items, ShardedMap) else cls(items)

    @classmethod
    def _make(cls, shards: tuple[dict[str, V], ...], length: int) -> ShardedMap[V]:
        new: ShardedMap[V] = cls.__new__(cls)
        new._shards, new._len = shards, length
        return new

    def __getitem__(self, key: str) -> V:
        return self._shards[_shard(key)][key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._shards[_shard(key)].get(key, default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._shards[_shard(key)]

    def __iter__(self) -> Iterator[str]:
        for shard in self._shards:
            yield from shard

    def __len__(self) -> int:
        return self._len

    def set(self, key: str, value: V) -> ShardedMap[V]:
        i = _shard(key)
        shard = self._shards[i]
        grown = key not in shard
        shards = list(self._shards)
        shards[i] = {**shard, key: value}
        return self._make(tuple(shards), self._len + grown)

    def remove(self, key: str) -> ShardedMap[V]:
        i = _shard(key)
        if key not in self._shards[i]:
            return self
        shard = dict(self._shards[i])
        del shard[key]
        shards = list(self._shards)
        shards[i] = shard
        return self._make(tuple(shards), self._len - 1)

    def __reduce__(self) -> tuple[Callable[..., ShardedMap[V]], tuple[dict[str, V]]]:
        return (ShardedMap, (dict(self.items()),))

    def __repr__(self) -> str:
        return f"ShardedMap({dict(self.items())!r})"


class GenerationLog(Mapping[str, V], Generic[V]):
    __slots__ = ("_gens", "_len", "generation_size")

    def __init__(self, generation_size: int, items: Mapping[str, V] | None = None) -> None:
        self.generation_size = max(1, generation_size)
        self._gens: tuple[dict[str, V], ...] = ()
        self._len = 0
        for key, value in (items or {}).items():
            self._append_in_place(key, value)

    def _append_in_place(self, key: str, value: V, start_new: bool = False) -> None:
        gens = self._gens
        if gens and len(gens[-1]) < self.generation_size and not start_new:
            gens = (*gens[:-1], {**gens[-1], key: value})
        else:
            gens = (*gens, {key: value})
        self._gens, self._len = gens, self._len + 1

    def append(self, key: str, value: V, *, start_new: bool = False) -> GenerationLog[V]:
        """A log with `key` added as the newest entry (`key` must not be present),
        in a new generation if the newest is full or `start_new` is set."""
        new: GenerationLog[V] = GenerationLog(self.generation_size)
        new._gens, new._len = self._gens, self._len
        new._append_in_place(key, value, start_new)
        return new

    def remove(self, key: str) -> GenerationLog[V]:
        """A log without `key` (rare: an ended order that a late report re-opens or changes);
        a generation left empty is dropped, so every generation has a first and last entry."""
        for i, gen in enumerate(self._gens):
            if key in gen:
                rest = {k: v for k, v in gen.items() if k != key}
                new: GenerationLog[V] = GenerationLog(self.generation_size)
                new._gens = (*self._gens[:i], *((rest,) if rest else ()), *self._gens[i + 1:])
                new._len = self._len - 1
                return new
        return self

    def drop_oldest_generations(self, count: int) -> GenerationLog[V]:
        if count <= 0:
            return self
        new: GenerationLog[V] = GenerationLog(self.generation_size)
        new._gens = self._gens[count:]
        new._len = sum(len(g) for g in new._gens)
        return new

    def newest_generation_start(self) -> V | None:
        """The first entry of the newest generation (None when empty)."""
        return next(iter(self._gens[-1].values())) if self._gens else None

    def generations(self) -> Iterator[tuple[V, V, int]]:
        """(first entry, last entry, size) of each generation, oldest first."""
        for gen in self._gens:
            yield next(iter(gen.values())), next(reversed(gen.values())), len(gen)

    def __getitem__(self, key: str) -> V:
        for gen in reversed(self._gens):
            if key in gen:
                return gen[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(key in gen for gen in self._gens)

    def __iter__(self) -> Iterator[str]:
        for gen in self._gens:
            yield from gen

    def __len__(self) -> int:
        return self._len

    def __reduce__(
        self,
    ) -> tuple[Callable[..., GenerationLog[V]], tuple[int, tuple[dict[str, V], ...]]]:
        # The generation boundaries are state (they decide what is trimmed together).
        return (_restore_log, (self.generation_size, self._gens))

    def __repr__(self) -> str:
        return f"GenerationLog({self.generation_size}, {dict(self.items())!r})"


def _restore_log(generation_size: int, gens: tuple[dict[str, V], ...]) -> GenerationLog[V]:
    log: GenerationLog[V] = GenerationLog(generation_size)
    log._gens, log._len = gens, sum(len(g) for g in gens)
    return log
