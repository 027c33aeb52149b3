"""The `tapeflow dlq` commands: dead letters listed by reason, and replayed once their cause is
fixed (registered on the app when this module is imported; docs/bad-input.md)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.cli.options import End, Format, Output, Start
from tapeflow.text import terminal_safe

if TYPE_CHECKING:
    from jobs.dlq import Selection

dlq_app = typer.Typer(
    help="Dead letters: records that did not decode, and rows a store refused, listed by "
    "reason; replay them once the cause is fixed.\n\n"
    "Example: tapeflow dlq list",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")

Reasons = Annotated[
    list[str] | None,
    typer.Option("--reason", help="Only letters with this reason, e.g. unknown_schema_id "
                 "(repeatable)."),
]
Sources = Annotated[
    list[str] | None,
    typer.Option("--source", help="Only letters from this topic (e.g. md.trades) or store "
                 "(postgres, clickhouse) (repeatable)."),
]


def _selection(reasons: list[str] | None, sources: list[str] | None, start: str | None,
               end: str | None, letters: list[str] | None = None) -> Selection:
    from jobs.dlq import Selection, parse_position
    from jobs.query_params import to_us

    return Selection(
        reasons=frozenset(reasons or ()), sources=frozenset(sources or ()),
        positions=frozenset(parse_position(text) for text in letters or ()),
        start_us=None if start is None else to_us(start, "start", 0),
        end_us=None if end is None else to_us(end, "end", 0))


@dlq_app.command("list")
def list_letters(
    ctx: typer.Context,
    reasons: Reasons = None,
    sources: Sources = None,
    start: Start = None,
    end: End = None,
    each: Annotated[
        bool, typer.Option("--letters", help="One row per letter (its place PARTITION:OFFSET "
                           "for `replay --letter`, origin, key, detail) instead of counts.")
    ] = False,
    fmt: Format = "table",
    output: Output = None,
) -> None:
    """Dead letters counted by reason and source: how many, how many can be and were
    replayed, the first and the last. --start/--end select by the letter's time.

    Example: tapeflow dlq list --reason store_refused --letters
    """
    from jobs.dlq import read_letters
    from jobs.local.services import ensure_postgres
    from jobs.query_output import FORMATS, render
    from jobs.query_params import QueryInputError

    if fmt not in FORMATS:
        raise QueryInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    selection = _selection(reasons, sources, start, end)
    letters = read_letters(ensure_postgres(settings_of(ctx)), selection)
    frame = letters.each() if each else letters.summary()
    note = render(frame, fmt, output, out=sys.stdout,
                  title="dead letters" if each else "dead letters by reason")
    if note:
        typer.echo(note, err=True)
    if letters.undecodable:
        typer.echo(f"{letters.undecodable} value(s) on the dead-letter topic are not dead "
                   "letters and were skipped", err=True)


@dlq_app.command("replay")
def replay_letters(
    ctx: typer.Context,
    reasons: Reasons = None,
    sources: Sources = None,
    positions: Annotated[
        list[str] | None,
        typer.Option("--letter", help="Only this letter, PARTITION:OFFSET as `dlq list "
                     "--letters` shows it (repeatable)."),
    ] = None,
    start: Start = None,
    end: End = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every letter (a replay needs a selection or this).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be re-injected; change nothing.")
    ] = False,
) -> None:
    """Re-inject the selected dead letters, once their cause is fixed: a record that did not
    decode goes back to its topic (its key and Kafka timestamp kept), rows a store refused go
    back to that store. Idempotent: a letter replayed before is skipped.

    Example: tapeflow dlq replay --reason store_refused --source postgres
    """
    from jobs.dlq import DlqError
    from jobs.dlq_replay import replay
    from jobs.local.services import resolve

    selection = _selection(reasons, sources, start, end, positions)
    if selection.everything and not everything:
        raise DlqError("say which letters to replay (--reason, --source, --letter, "
                       "--start/--end), or --all for every one")
    report = replay(resolve(settings_of(ctx), start_kafka=False), selection, dry_run=dry_run)
    for line in report.lines():
        typer.echo(terminal_safe(line))
