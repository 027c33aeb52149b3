"""Options shared by the commands, so each idea has one spelling everywhere.

| idea | spelling |
| --- | --- |
| time range | `--start` (inclusive) and `--end` (exclusive): ISO-8601, UTC when no offset |
| symbols | `--symbol` / `-s`, repeatable (symbols are taken exactly: no comma splitting) |
| output file or directory | `--output` / `-o` |
| output format | `--format` / `-f`: table, csv, json, jsonl or parquet |
| following a stream | `--follow` (no short form: `-f` is the format) |
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FORMAT_HELP = "table, csv, json, jsonl (one JSON object per line) or parquet."

Format = Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file (parquet needs one).")
]
Start = Annotated[
    str | None, typer.Option(help="ISO-8601 start, inclusive (UTC if no offset).")
]
End = Annotated[str | None, typer.Option(help="ISO-8601 end, exclusive (UTC if no offset).")]
Symbols = Annotated[
    list[str] | None,
    typer.Option("--symbol", "-s", help="Only this symbol (repeatable)."),
]
Follow = Annotated[bool, typer.Option("--follow", help="Keep waiting for new records.")]
