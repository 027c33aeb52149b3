"""Venue sequence numbers: duplicates, gaps and resets, in bounded memory.

One tracker per (venue, symbol, kind): trades and quotes are separate streams with separate
sequence spaces by default, because venues number them separately (and docs/design.md gives the
sequence "per symbol" for each topic).

Why "holes" and not "seen": a healthy feed is in order, so the tracker keeps the highest number
seen (`top`) and the set of numbers skipped below it that are still inside the window. The
in-order case is then one comparison and one assignment, whatever the window size, and memory
grows only with real gaps (at most `window` numbers).

Rules, for a tick with sequence `s` and event time `ts` (`window` = W):

- first tick: remembered as `top`; nothing before it is known.
- `s > top`: accepted; if `s > top + 1`, the numbers in between are a gap (reported once) and
  become holes (only the last W-1 of them are remembered).
- `s <= top` and `ts >= ts(top) + reset_min_gap`: the venue restarted its numbering (time went
  forward while the number went back): accepted, the tracker starts again from `s`.
- `s <= top - W`: `seq_too_old`, since it can no longer be told apart from a duplicate.
- `s` is a hole: accepted as a late fill, the hole is closed.
- `s` below the first number ever seen (and inside the window): accepted; the numbers between
  it and the first become holes.
- otherwise: `duplicate_seq`.
"""

from __future__ import annotations

from tapeflow.core.market.rejections import RejectReason

_NOTHING = -(2**64)
"""Below any Avro long, so `seq == top + 1` is never true before the first tick."""

FIRST = 0
ADVANCED = 1
FILLED = 2
RESET = 3


class SeqTracker:
    """Mutable, owned by one stream's filter state; see `tapeflow.core.market.tick_filter` for
    why."""

    __slots__ = ("base", "holes", "top", "top_ts")

    def __init__(self) -> None:
        self.top = _NOTHING
        self.top_ts = 0
        self.base = _NOTHING
        self.holes: set[int] = set()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeqTracker):
            return NotImplemented
        return (self.top, self.top_ts, self.base, self.holes) == (
            other.top,
            other.top_ts,
            other.base,
            other.holes,
        )

    __hash__ = None  # type: ignore[assignment]

    def observe(
        self, seq: int, ts: int, window: int, reset_min_gap_us: int
    ) -> tuple[RejectReason | None, int, int]:
        """The out-of-order path: (rejection, number of missing seqs revealed, outcome code).

        Callers handle `seq == top + 1` themselves; this handles every other case.
        """
        top = self.top
        if top == _NOTHING:
            self.top = self.base = seq
            self.top_ts = ts
            return None, 0, FIRST
        if seq > top:
            missing = seq - top - 1
            if missing:
                holes = self.holes
                holes.update(range(max(top + 1, seq - window + 1), seq))
                if len(holes) >= window:
                    floor = seq - window
                    self.holes = {h for h in holes if h > floor}
            self.top = seq
            self.top_ts = ts
            return None, missing, ADVANCED
        if ts >= self.top_ts + reset_min_gap_us:
            self.top = self.base = seq
            self.top_ts = ts
            self.holes = set()
            return None, 0, RESET
        if seq <= top - window:
            return RejectReason.SEQ_TOO_OLD, 0, 0
        holes = self.holes
        if seq in holes:
            holes.discard(seq)
            return None, 0, FILLED
        if seq < self.base:
            holes.update(range(seq + 1, self.base))
            self.base = seq
            return None, 0, FILLED
        return RejectReason.DUPLICATE_SEQ, 0, 0
