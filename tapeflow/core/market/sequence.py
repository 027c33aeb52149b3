"""Venue sequence numbers: duplicates, gaps and resets, in bounded memory.

One tracker per (venue, symbol, kind): trades and quotes are separate streams with separate
sequence spaces, because venues number them separately (docs/design.md gives the sequence
"per symbol" for each topic).

**What a duplicate is.** The same venue, the same sequence number *and* the same content. How
far the sequence number alone can tell depends on the venue, so the venue's sequence semantics
are a setting (`FilterConfig.seq_mode`, per venue `FilterConfig.venue_seq_modes`):

- `unique`: every message has its own number (most equity feeds). A number already seen is a
  duplicate without looking at the content: cheap, and memory is the holes only.
- `packet`: every message of one packet carries the packet's number (CME MDP 3.0: the trades of
  a packet share its sequence number). A number already seen is a duplicate only if the tick
  is identical in every field to one already received with that number; the ticks of the last
  `packet_memory` numbers are remembered whole for that. A number seen longer ago than that is
  taken as a re-sent packet (a packet travels as one datagram: its members arrive together), as
  in `unique` mode.
- `none`: the venue sends no usable number. No gaps, no resets; a duplicate is a tick identical
  in every field to one of the last `window` ticks of the stream.

The default is `packet` (`FilterConfig.seq_mode`): on a venue that numbers every message it
gives the same verdicts as `unique` for everything such a venue sends (a re-sent message is
identical to the original), while `unique` on a packet venue rejects every print of a packet
but the first as `duplicate_seq` and the candles lose their volume. The safe default is the one
whose mistake cannot be a lost genuine print; its cost is the remembered ticks.

Why "holes" and not "seen": a healthy feed is in order, so the tracker keeps the highest number
seen (`top`) and the set of numbers skipped below it that are still inside the window. The
in-order case is then one comparison and one assignment, whatever the window size, and memory
grows only with real gaps (at most `window` numbers).

Rules, for a tick with sequence `s` and event time `ts` (`window` = W), in `unique` and
`packet` mode:

- first tick: remembered as `top`; nothing before it is known.
- `s > top`: accepted; if `s > top + 1`, the numbers in between are a gap (reported once) and
  become holes (only the last W-1 of them are remembered). (`packet`: a new packet.)
- `packet`, `s` among the last `packet_memory` numbers: a duplicate if identical to a tick
  received with `s`, else accepted (another message of that packet).
- a venue reset (the venue restarted its numbering): `s` is not a hole, and either
  `ts >= ts(top) + reset_min_gap` (today's clock moved on a minute while the number went back),
  or `ts > ts(top)` and `s` is at most `reset_start` (1: venues restart at 1) or below the window
  (`s <= top - W`). Accepted; the tracker starts again from `s`. Why these: a venue restarting
  after a short outage starts at 1 a few seconds later, and was refused as `seq_too_old` (or
  `duplicate_seq`) for a minute until the 60 s rule fired. A re-sent or late tick carries its
  original event time, which is not later than the top's, so it is never taken for a reset.
  The numbering before the reset is kept as `previous` (one level): a late tick of the old
  session (event time before the reset's first tick) is judged by it, not taken for a jump of
  the new numbering.
- `s <= top - W`: `seq_too_old`, since it can no longer be told apart from a duplicate.
- `s` is a hole: accepted as a late fill, the hole is closed.
- `s` below the first number ever seen (and inside the window): accepted; the numbers between
  it and the first become holes.
- otherwise: `duplicate_seq`.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum

from tapeflow.core.market.rejections import RejectReason

_NOTHING = -(2**64)
"""Below any Avro long, so `seq == top + 1` is never true before the first tick."""

FIRST = 0
ADVANCED = 1
FILLED = 2
RESET = 3
SHARED = 4
"""Another message of a packet already seen (`packet` mode)."""
UNSEQUENCED = 5
"""`none` mode: not a duplicate."""


class SeqMode(StrEnum):
    """A venue's sequence semantics (module docstring)."""

    UNIQUE = "unique"
    PACKET = "packet"
    NONE = "none"


class SeqTracker:
    """Mutable, owned by one stream's filter state; see `tapeflow.core.market.tick_filter` for
    why. `unique` is True when the in-order fast path (`seq == top + 1`) may skip `observe`."""

    __slots__ = (
        "base",
        "holes",
        "mode",
        "packets",
        "previous",
        "recent",
        "seen",
        "session_ts",
        "top",
        "top_ts",
        "unique",
    )

    def __init__(self, mode: SeqMode = SeqMode.UNIQUE) -> None:
        self.mode = mode
        self.unique = mode is SeqMode.UNIQUE
        self.top = _NOTHING
        self.top_ts = 0
        self.base = _NOTHING
        self.holes: set[int] = set()
        self.packets: dict[int, list[tuple[object, ...]]] = {}
        """`packet`: the ticks received with each of the last `packet_memory` numbers."""
        self.recent: deque[tuple[object, ...]] = deque()
        """`none`: the last `window` ticks, oldest first."""
        self.seen: dict[tuple[object, ...], int] = {}
        """`none`: the ticks of `recent` (each once), for lookup."""
        self.previous: SeqTracker | None = None
        """The numbering before the last reset."""
        self.session_ts = _NOTHING
        """Event time of the first tick after the last reset."""

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeqTracker):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def observe(
        self,
        seq: int,
        ts: int,
        tick: tuple[object, ...],
        *,
        window: int,
        reset_min_gap_us: int,
        reset_start: int = 1,
        packet_memory: int = 0,
    ) -> tuple[RejectReason | None, int, int]:
        """Everything but the in-order fast path of `unique` mode: (rejection, number of
        missing seqs revealed, outcome code)."""
        if self.mode is SeqMode.NONE:
            return self._content_only(tick, window)
        previous = self.previous
        if previous is not None and ts < self.session_ts:
            reason, _missing, outcome = previous.observe(
                seq, ts, tick, window=window, reset_min_gap_us=reset_min_gap_us,
                reset_start=reset_start, packet_memory=packet_memory,
            )
            return reason, 0, outcome  # a gap of a finished numbering is not reported
        top = self.top
        packet = self.mode is SeqMode.PACKET
        if top == _NOTHING:
            self.top = self.base = seq
            self.top_ts = ts
            if packet:
                self.packets[seq] = [tick]
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
            if packet:
                self._forget_packets(top, seq, packet_memory)
                self.packets[seq] = [tick]
            return None, missing, ADVANCED
        holes = self.holes
        if seq < top and seq not in holes and ts > self.top_ts and (
            seq <= reset_start or seq <= top - window or ts >= self.top_ts + reset_min_gap_us
        ):
            self._reset(seq, ts, tick)
            return None, 0, RESET
        if packet and seq not in holes:
            members = self.packets.get(seq)
            if members is not None:
                if tick in members:
                    return RejectReason.DUPLICATE_SEQ, 0, 0
                members.append(tick)
                return None, 0, SHARED
        if seq <= top - window:
            return RejectReason.SEQ_TOO_OLD, 0, 0
        if seq in holes:
            holes.discard(seq)
            self._remember(seq, tick, packet_memory)
            return None, 0, FILLED
        if seq < self.base:
            holes.update(range(seq + 1, self.base))
            self.base = seq
            self._remember(seq, tick, packet_memory)
            return None, 0, FILLED
        return RejectReason.DUPLICATE_SEQ, 0, 0

    def _reset(self, seq: int, ts: int, tick: tuple[object, ...]) -> None:
        old = SeqTracker(self.mode)
        old.top, old.top_ts, old.base, old.holes = self.top, self.top_ts, self.base, self.holes
        old.packets = self.packets
        self.previous = old
        self.session_ts = ts
        self.top = self.base = seq
        self.top_ts = ts
        self.holes = set()
        self.packets = {seq: [tick]} if self.mode is SeqMode.PACKET else {}

    def _remember(self, seq: int, tick: tuple[object, ...], packet_memory: int) -> None:
        """A late fill in `packet` mode: its packet's other messages may follow."""
        if self.mode is SeqMode.PACKET and seq > self.top - packet_memory:
            self.packets[seq] = [tick]

    def _forget_packets(self, old_top: int, new_top: int, packet_memory: int) -> None:
        packets = self.packets
        floor = new_top - packet_memory
        if floor >= old_top:
            packets.clear()
            return
        for s in range(old_top - packet_memory + 1, floor + 1):
            packets.pop(s, None)
        if len(packets) > packet_memory:  # late fills below the old floor
            for s in [s for s in packets if s <= floor]:
                del packets[s]

    def _content_only(self, tick: tuple[object, ...], window: int) -> tuple[
            RejectReason | None, int, int]:
        seen = self.seen
        if tick in seen:
            return RejectReason.DUPLICATE_SEQ, 0, 0
        recent = self.recent
        recent.append(tick)
        seen[tick] = 1
        if len(recent) > window:
            del seen[recent.popleft()]
        return None, 0, UNSEQUENCED
