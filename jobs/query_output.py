"""A query's DataFrame as a table, CSV, JSON, JSON Lines or Parquet, to the terminal or a file.

Exactness survives every format: polars writes Decimal columns as their exact digits in CSV
and as JSON strings in JSON and JSON Lines (`"123.45678901"`, never a JSON number a reader
would parse as a float),
and Parquet keeps them as decimal128 with their scale. Timestamps are ISO-8601 with the UTC
offset in text formats. Parquet is binary, so it needs `--output`.

Output is data, never markup or commands (docs/query.md, "Output is data"):
- a table is built from `rich.text.Text` cells, title and headers, which rich never reads as
  markup: a symbol `[/]` used to be a closing tag with nothing to close, and `query` crashed
  for everyone on any row that held it (`[bold]` would have styled the table);
- control characters are escaped wherever text reaches a terminal (`tapeflow.text`): always in
  a table, and in CSV, JSON and JSON Lines written to a terminal (a file or a pipe gets the
  data as it is);
- CSV neutralises spreadsheet formulas: a text cell starting with `=`, `+`, `-`, `@`, a tab or a
  carriage return is written with a leading `'` (the OWASP rule), so a symbol `=HYPERLINK(...)`
  opened in a spreadsheet is text, not a formula. Numbers, decimals and times are never text
  cells, so negative prices stay numbers.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

import polars as pl
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobs.query_params import QueryInputError
from tapeflow.text import terminal_lines, terminal_safe

FORMATS = ("table", "csv", "json", "jsonl", "parquet")


def render(frame: pl.DataFrame, fmt: str, output: Path | None, *,
           out: IO[str] | None = None, title: str | None = None) -> str | None:
    """Write `frame` in `fmt` to `output`, or to `out` (the terminal) when no file is given.

    Returns a one-line note for the terminal when a file was written, else None."""
    if fmt not in FORMATS:
        raise QueryInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "parquet":
        if output is None:
            raise QueryInputError("--format parquet writes a binary file: give --output FILE")
        frame.write_parquet(output)
    elif fmt == "csv":
        _text(neutralise_formulas(frame).write_csv(), output, out)
    elif fmt == "json":
        _text(frame.write_json(), output, out)
    elif fmt == "jsonl":
        _text(frame.write_ndjson(), output, out)
    else:
        buffer = io.StringIO()
        target = buffer if output is not None else out
        # A terminal gives its own width; a file or a pipe gets room for a wide table.
        tty = target is not None and target.isatty()
        console = Console(file=target, width=None if tty else 200, no_color=not tty)
        console.print(table_of(frame, title))
        if output is not None:
            output.write_text(buffer.getvalue())
    return f"{frame.height} rows written to {output}" if output is not None else None


def _text(text: str, output: Path | None, out: IO[str] | None) -> None:
    if output is not None:
        output.write_text(text)
    elif out is not None:
        if out.isatty():
            text = terminal_lines(text)
        out.write(text)
        if text and not text.endswith("\n"):
            out.write("\n")


FORMULA_START = re.compile(r"^[=+\-@\t\r]")
"""What a spreadsheet reads as the start of a formula (OWASP, "CSV injection")."""


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells that a spreadsheet would run as a formula, prefixed with `'`."""
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not texts:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START.pattern))
        .then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
        for name in texts)


def table_of(frame: pl.DataFrame, title: str | None = None) -> Table:
    """A rich table; numbers right-aligned, decimals with all their digits. Every piece of
    text is a `Text` (never markup) with its control characters escaped."""
    table = Table(title=None if title is None else Text(terminal_safe(title)),
                  show_lines=False, caption=Text(f"{frame.height} rows"))
    for name, dtype in frame.schema.items():
        table.add_column(Text(terminal_safe(name)),
                         justify="right" if dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*(Text(terminal_safe(cell(v))) for v in row))
    return table


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
