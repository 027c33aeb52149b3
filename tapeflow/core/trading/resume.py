"""Resuming a trading shard's snapshot written by an earlier version.

A recovery snapshot is the pickled `ShardState`. Fields added since it was written are absent
from the unpickled objects (pickle restores the fields it has), so a resumed shard is completed
here before its first step: the kept figures of issue 12 are rebuilt from the positions, the
lazily built ones set to "not built yet", the holders index rebuilt. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, replace
from typing import TypeVar

from tapeflow.core.trading.positions import recomputed_totals
from tapeflow.core.trading.shard_step import ShardState

_TOTALS = ("market_16", "gross_16", "basis_16")
_T = TypeVar("_T")


def rebuild_kept_figures_inplace(shard: ShardState) -> ShardState:
    """Complete a resumed shard's kept figures from its positions: each account's running
    totals (`positions.recomputed_totals`), the risk state's lazily built figures (absent:
    None, "not built yet") and the symbol -> holders index; advances `shard` in place and
    returns it.

    Why: a recovery snapshot written by a version before the kept figures (issue 12) has no
    such fields, and resuming it must neither fail nor start from zero totals. For a snapshot
    of this version it changes nothing: the kept figures equal the recomputation after every
    step (tests/unit/test_account_totals.py), and an index that is there is kept as it is."""
    for account_id, state in shard.accounts.items():
        account, risk = state.account, state.risk
        totals = recomputed_totals(account)
        if tuple(getattr(account, name, None) for name in _TOTALS) != totals:
            market, gross, basis = totals
            account = replace(_completed(account), market_16=market, gross_16=gross,
                              basis_16=basis)
        if account is not state.account or _incomplete(risk):
            shard.accounts[account_id] = replace(state, account=account,
                                                 risk=_completed(risk))
    if hasattr(shard, "holders"):
        return shard
    holders: dict[str, dict[str, None]] = {}
    for account_id in sorted(shard.accounts):
        for symbol, position in shard.accounts[account_id].account.positions.items():
            if position.qty:
                holders.setdefault(symbol, {})[account_id] = None
    shard.holders = holders
    return shard


def _incomplete(obj: object) -> bool:
    return any(not hasattr(obj, f.name) for f in fields(obj))  # type: ignore[arg-type]


def _completed(obj: _T) -> _T:
    """`obj` (a frozen slotted dataclass unpickled from an earlier version) with the fields it
    lacks set to their defaults; itself when it lacks none."""
    if not _incomplete(obj):
        return obj
    values = {}
    for f in fields(obj):  # type: ignore[arg-type]
        if hasattr(obj, f.name):
            values[f.name] = getattr(obj, f.name)
        elif f.default is not MISSING:
            values[f.name] = f.default
        elif f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
        else:
            values[f.name] = 0  # a running total, recomputed by the caller
    return type(obj)(**values)

