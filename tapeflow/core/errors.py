"""The root of Tapeflow's error family, in the core so that core errors belong to it too.

`TapeflowError` is every error Tapeflow raises on purpose. `UserError` beneath it is one a
person can fix (a setting, a flag, an input file, a missing `tapeflow init`): the command line
prints its message on one line instead of a traceback. Store and broker errors, which need I/O
to happen, are declared beside the services in `tapeflow.errors`.
"""

from __future__ import annotations


class TapeflowError(Exception):
    """Base of every error Tapeflow raises on purpose."""


class UserError(TapeflowError):
    """Something the user can fix; its message says what, in one line."""
