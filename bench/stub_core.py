"""BENCH ONLY, NOT THE REAL FLOW: `tapeflow run ...` with the trading core replaced by a replay
of its precomputed outputs, to measure what the flow around the core (Kafka source, decoding,
Bytewax, snapshots, the Postgres, ClickHouse and alert writers) does when the core costs
almost nothing (issue 12: the core is the other part of the work, phase 2).

Usage (bench/trading_flow.py --stub-core runs it): `python bench/stub_core.py OUTPUTS.pickle
run trading --batch`, everything after the file being `tapeflow`'s own arguments. OUTPUTS is
what `precompute` wrote: the pure core folded once over the same input (every account in one
shard), so the replayed records are real outputs of the real rules:

- a report gets the outputs the fold produced for its exec_id (a re-sent one: the next of
  that exec_id's outputs, in order);
- a mark gets the fold's revaluations for the accounts this shard has seen;
- the timer produces nothing; the end of input gives the fold's last P&L snapshots of this
  shard's accounts.

The stubbed steps keep only the set of accounts in the shard state (for snapshots, which are
therefore tiny): the snapshot cost the real state has is not in these figures either.
"""

from __future__ import annotations

import pickle
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import flows.trading_logic as logic
from tapeflow.cli import main as tapeflow_main
from tapeflow.core.models import ExecutionReport, Trade
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import (
    ExecutionResult,
    PnlSnapshot,
    ShardOutput,
    ShardState,
    StateChange,
    mark_of,
    on_finish_inplace,
    on_market_inplace,
    on_report_inplace,
)


def precompute(arrivals: list[ExecutionReport | Trade], config: TradingConfig,
               path: Path) -> None:
    """Fold the real core over `arrivals` and write what the stub replays to `path`."""
    shard = ShardState()
    reports: dict[str, list[list[ShardOutput]]] = defaultdict(list)
    marks: dict[str, list[tuple[str, ShardOutput]]] = {}
    for event in arrivals:
        if isinstance(event, ExecutionReport):
            reports[event.exec_id].append(on_report_inplace(shard, event, config))
        else:
            mark = mark_of(event)
            changes = on_market_inplace(shard, mark, config)
            marks[mark.source_id] = [(_account(c), c) for c in changes]
    finish = [(_account(s), s) for s in on_finish_inplace(shard)]
    with path.open("wb") as f:
        pickle.dump((dict(reports), marks, finish), f, pickle.HIGHEST_PROTOCOL)


def _account(out: ShardOutput) -> str:
    if isinstance(out, PnlSnapshot):
        return out.account_id
    if isinstance(out, StateChange | ExecutionResult):
        account = out.output.account or out.output.position
        if account is not None:
            return account.account_id
    return ""


class Replay:
    """The stubbed shard steps, with the signatures of `tapeflow.core.trading.shard_step`."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as f:
            reports, marks, finish = pickle.load(f)  # the bench's own file
        self.reports: dict[str, list[list[ShardOutput]]] = reports
        self.marks: dict[str, list[tuple[str, ShardOutput]]] = marks
        self.finish: list[tuple[str, ShardOutput]] = finish
        self.used: dict[str, int] = defaultdict(int)

    def on_report(self, shard: ShardState, report: ExecutionReport, *_: Any
                  ) -> list[ShardOutput]:
        shard.accounts.setdefault(report.account_id, None)  # type: ignore[arg-type]
        outs = self.reports.get(report.exec_id)
        if not outs:
            return []
        i = min(self.used[report.exec_id], len(outs) - 1)
        self.used[report.exec_id] += 1
        return outs[i]

    def on_market(self, shard: ShardState, mark: Any, *_: Any) -> list[ShardOutput]:
        return [out for account, out in self.marks.get(mark.source_id, ())
                if account in shard.accounts]

    def on_tick(self, *_: Any) -> list[ShardOutput]:
        return []

    def on_finish(self, shard: ShardState, *_: Any) -> list[ShardOutput]:
        return [out for account, out in self.finish if account in shard.accounts]


def main() -> None:
    replay = Replay(Path(sys.argv[1]))
    # Patched before any flow is built; the logic looks them up at every call.
    logic.on_report_inplace = replay.on_report  # type: ignore[assignment]
    logic.on_market_inplace = replay.on_market  # type: ignore[assignment]
    logic.on_tick_inplace = replay.on_tick  # type: ignore[assignment]
    logic.on_finish_inplace = replay.on_finish  # type: ignore[assignment]
    sys.argv = ["tapeflow", *sys.argv[2:]]
    tapeflow_main()


if __name__ == "__main__":
    main()
