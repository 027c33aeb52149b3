"""Output is data, never markup or commands (docs/query.md, "Output is data"; issue 14).

Table-driven over values a feed or an OMS can send: rich markup (`[/]` crashed `query` for
everyone: a closing tag with nothing to close), terminal escape sequences (an OSC retitles the
terminal, `ESC[2J` clears it), C1 controls, carriage returns, bidirectional overrides, and
spreadsheet formulas in CSV. Through the real store and command line:
tests/integration/test_query_hostile_symbols.py.
"""

from __future__ import annotations

import io
import logging
from decimal import Decimal

import polars as pl
import pytest

from jobs.query_output import neutralise_formulas, render
from tapeflow.cli.app import one_line
from tapeflow.errors import UserError
from tapeflow.text import terminal_lines, terminal_safe

HOSTILE = {
    "[/]": "[/]",
    "[bold red]loud[/]": "[bold red]loud[/]",
    "[link=http://x]click[/link]": "[link=http://x]click[/link]",
    ":warning: emoji code": ":warning: emoji code",
    "\x1b]0;owned\x07": "\\x1b]0;owned\\x07",
    "A\x1b[2JB": "A\\x1b[2JB",
    "C\x9b31mD": "C\\x9b31mD",
    "over\rwrite": "over\\x0dwrite",
    "tab\there": "tab\\x09here",
    "abc\u202efed": "abc\\u202efed",
    "plain": "plain",
}


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("value", "shown"), sorted(HOSTILE.items()))
def test_terminal_safe_shows_controls_as_escapes(value: str, shown: str) -> None:
    assert terminal_safe(value) == shown
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in terminal_safe(value))


def test_a_table_shows_markup_and_controls_as_text() -> None:
    frame = pl.DataFrame({"symbol": list(HOSTILE), "price": [Decimal("-1.5")] * len(HOSTILE)})
    out = io.StringIO()
    render(frame, "table", None, out=out, title="[/] candles \x1b[2J")
    text = out.getvalue()
    for shown in HOSTILE.values():
        assert shown in text
    assert "[/] candles \\x1b[2J" in text
    assert "\x1b" not in text and "\x9b" not in text and "\r" not in text
    assert "\u202e" not in text and "-1.5" in text


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://evil\",\"x\")", "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tTAB", "'\tTAB"),
    ("AAPL", "AAPL"),
    ("A=B", "A=B"),
])
def test_csv_neutralises_formulas_in_text_cells_only(value: str, cell: str) -> None:
    frame = pl.DataFrame({"symbol": [value], "price": [Decimal("-1.50000000")], "n": [-3]})
    out = io.StringIO()
    render(frame, "csv", None, out=out)
    assert out.getvalue().splitlines()[1] == f"{cell},-1.50000000,-3"
    assert neutralise_formulas(frame)["price"].to_list() == [Decimal("-1.50000000")]


def test_text_formats_escape_controls_on_a_terminal_only(tmp_path: object) -> None:
    frame = pl.DataFrame({"symbol": ["A\x1b[2JB", "C\x9bD"]})
    for fmt in ("csv", "json", "jsonl"):
        terminal, pipe = Terminal(), io.StringIO()
        render(frame, fmt, None, out=terminal)
        render(frame, fmt, None, out=pipe)
        assert "\x1b" not in terminal.getvalue() and "\x9b" not in terminal.getvalue(), fmt
        assert "\\x1b" in terminal.getvalue() or "\\u001b" in terminal.getvalue(), fmt
        if fmt == "csv":  # a pipe or a file gets the data itself
            assert "A\x1b[2JB" in pipe.getvalue()


def test_error_lines_and_reports_never_carry_controls() -> None:
    assert one_line(UserError("no candles for 'A\x1b]0;x\x07' in range\nsecond line")) == \
        "no candles for 'A\\x1b]0;x\\x07' in range"
    assert terminal_lines("break A\x1b[2J\nbreak B\r") == "break A\\x1b[2J\nbreak B\\x0d"


def test_text_log_lines_show_controls_as_escapes() -> None:
    from tapeflow.cli.logs import TEXT_FORMAT, TextFormatter

    record = logging.LogRecord("tapeflow.flows.trading", logging.WARNING, __file__, 1,
                               "execution %s for order %s not applied", ("E\x1b[2J", "O\r1"),
                               None)
    line = TextFormatter(TEXT_FORMAT).format(record)
    assert line.endswith("execution E\\x1b[2J for order O\\x0d1 not applied")
    assert "\x1b" not in line and "\r" not in line
