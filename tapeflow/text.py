"""Text from the data, made safe for a terminal: control characters shown, never obeyed.

Why: symbols, venues, accounts and messages come from the feeds and the OMS, and a terminal
obeys what it is sent. An escape sequence in a symbol (`\\x1b]0;...\\x07`, `\\x1b[2J`) would
retitle or clear the terminal of whoever runs `tapeflow query`, a carriage return would
overwrite what was printed, and bidirectional overrides reorder what is shown (the "Trojan
Source" characters). So every C0 and C1 control character (tab and newline included: a cell or
a line is one value), DEL, and the bidirectional controls are written as escapes (`\\x1b`,
`\\u202e`) wherever data reaches a terminal (docs/query.md, "Output is data").
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """`text` with every control character written as an escape (module docstring)."""
    return _UNSAFE.sub(_escape, text)


def terminal_lines(text: str) -> str:
    """Each line of `text` made terminal-safe, the line breaks kept (for printed reports)."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))
