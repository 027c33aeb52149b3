"""Resuming a trading shard from a recovery snapshot of an earlier version (before the kept
figures of issue 12): `tapeflow.core.trading.resume.rebuild_kept_figures_inplace` completes it,
and the resumed shard then gives exactly the outputs the uninterrupted one gives."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.state_codec import dumps
from tapeflow.core.trading.resume import rebuild_kept_figures_inplace
from tapeflow.core.trading.shard_step import ShardState
from tests.support.account_sequences import World, check_kept_figures, next_step, step

NEW_ACCOUNT_FIELDS = ("market_16", "gross_16", "basis_16")
NEW_RISK_FIELDS = ("opening", "concentration_bound_16", "concentration_open")


def as_if_written_before(shard: ShardState) -> ShardState:
    """The shard as unpickling an earlier version's snapshot gives it: the fields added since
    are not set (pickle restores the fields the snapshot has)."""
    old = pickle.loads(pickle.dumps(shard))
    for state in old.accounts.values():
        for obj, names in ((state.account, NEW_ACCOUNT_FIELDS), (state.risk, NEW_RISK_FIELDS)):
            for name in names:
                if hasattr(obj, name):
                    object.__delattr__(obj, name)
    del old.holders
    return old


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_an_earlier_versions_snapshot_resumes_to_the_same_outputs(data: st.DataObject) -> None:
    world, shard = World(), ShardState()
    records = [next_step(world, data) for _ in range(data.draw(st.integers(2, 40)))]
    cut = data.draw(st.integers(1, len(records)))
    for kind, record in records[:cut]:
        step(shard, kind, record)
    resumed = rebuild_kept_figures_inplace(as_if_written_before(shard))
    check_kept_figures(resumed)
    for kind, record in records[cut:]:
        assert step(resumed, kind, record) == step(shard, kind, record)
        check_kept_figures(resumed)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_a_current_snapshot_is_resumed_unchanged(data: st.DataObject) -> None:
    world, shard = World(), ShardState()
    for _ in range(data.draw(st.integers(1, 30))):
        step(shard, *next_step(world, data))
    before = dumps(shard)
    assert dumps(rebuild_kept_figures_inplace(pickle.loads(before))) == before
