"""The copy-on-write maps behind the order book: persistence, pickling, bounds."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.core.trading.pmaps import SHARDS, GenerationLog, ShardedMap


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.text(max_size=4), st.integers()), max_size=60))
def test_sharded_map_behaves_like_a_dict_and_never_mutates_old_versions(
    ops: list[tuple[bool, str, int]],
) -> None:
    model: dict[str, int] = {}
    current: ShardedMap[int] = ShardedMap()
    history = [(current, dict(model))]
    for is_set, key, value in ops:
        if is_set:
            current = current.set(key, value)
            model[key] = value
        else:
            current = current.remove(key)
            model.pop(key, None)
        history.append((current, dict(model)))
    for version, snapshot in history:
        assert version == snapshot and dict(version) == snapshot and len(version) == len(snapshot)
        assert all(k in version and version[k] == v for k, v in snapshot.items())
    assert pickle.loads(pickle.dumps(current)) == model


def test_sharded_map_remove_of_missing_key_is_identity() -> None:
    m = ShardedMap({"a": 1})
    assert m.remove("zz") is m and m.get("zz") is None and m.get("a") == 1


def test_shard_of_a_key_is_the_same_in_another_process() -> None:
    """CRC-32, not the per-process salted hash(): a snapshot restored elsewhere still finds
    its keys."""
    keys = [f"order-{i}" for i in range(50)]
    blob = pickle.dumps(ShardedMap({k: i for i, k in enumerate(keys)}))
    code = (
        "import pickle,sys; m = pickle.loads(sys.stdin.buffer.read()); "
        f"print(all(m[k] == i for i, k in enumerate({keys!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=blob,
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert out.stdout.strip() == b"True"
    assert SHARDS == 64


def test_generation_log_appends_in_order_and_trims_whole_generations() -> None:
    log: GenerationLog[int] = GenerationLog(3)
    old = log
    for i in range(7):
        log = log.append(f"k{i}", i)
    assert len(old) == 0
    assert list(log) == [f"k{i}" for i in range(7)]
    assert [(first, last, n) for first, last, n in log.generations()] == [
        (0, 2, 3),
        (3, 5, 3),
        (6, 6, 1),
    ]
    trimmed = log.drop_oldest_generations(1)
    assert list(trimmed) == [f"k{i}" for i in range(3, 7)] and len(log) == 7
    assert "k0" not in trimmed and trimmed["k4"] == 4
    split = log.append("k7", 7, start_new=True)
    assert [n for _, _, n in split.generations()] == [3, 3, 1, 1]
    assert split.newest_generation_start() == 7


def test_generation_log_pickles_with_its_generation_boundaries() -> None:
    log: GenerationLog[int] = GenerationLog(4).append("a", 1).append("b", 2, start_new=True)
    clone = pickle.loads(pickle.dumps(log))
    assert clone == log
    assert list(clone.generations()) == list(log.generations()) == [(1, 1, 1), (2, 2, 1)]
