"""Tapeflow's domain core: pure rules over immutable values, no I/O and no engine.

The stream (Bytewax flows) and the batch (backfill jobs) call the same functions from here,
so a tick is judged and a candle is built the same way whichever path it takes.
"""

__version__ = "0.1.0"
