"""The command line's conventions hold for every command: one spelling per idea, `-f` means
one thing, `--version`, plain help text (a "[...]" in help is text, not markup)."""

from __future__ import annotations

from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from tapeflow import __version__
from tapeflow.cli import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        found.append(((*path, name), command))
        found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(get_command(app))


def param_multiple(command: Any, name: str) -> bool:
    return any(p.name == name and p.multiple for p in command.params)


def _options(command: Any) -> list[tuple[str, list[str]]]:
    return [(p.name, [*p.opts, *p.secondary_opts]) for p in command.params]


def test_one_spelling_per_idea() -> None:
    spellings = {"-f": "fmt", "-o": "output", "-s": "symbols", "--output": "output",
                 "--start": "start", "--end": "end", "--follow": "follow"}
    for path, command in COMMANDS:
        for name, opts in _options(command):
            for opt in opts:
                if opt in spellings and name not in (spellings[opt], "symbol"):
                    raise AssertionError(f"{' '.join(path)}: {opt} is {name}")
                assert opt not in ("--out", "--since", "--until"), path
                # `generate --symbols N` is a count; a list of symbols is `--symbol`, repeated.
                assert opt != "--symbols" or (name == "symbols" and not param_multiple(
                    command, name)), path


def test_symbols_are_repeatable_where_a_command_takes_several() -> None:
    for path, command in COMMANDS:
        for param in command.params:
            if "--symbol" in param.opts and param.name == "symbols":
                assert param.multiple, path


def test_version_and_plain_help() -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["--version"])
    assert done.exit_code == 0 and done.stdout.strip() == f"tapeflow {__version__}"
    shown = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "HOME/recovery/FLOW" in shown.stdout  # was eaten as markup once
    assert "TAPEFLOW_SNAPSHOT_INTERVAL_S" in shown.stdout


def test_store_addresses_are_not_flags() -> None:
    """DSNs hold passwords and flags show in the process table: environment or files only."""
    for path, command in [((), get_command(app)), *COMMANDS]:
        for _name, opts in _options(command):
            assert not any("dsn" in opt for opt in opts), path


def test_a_user_error_is_one_line_and_exit_2() -> None:
    done = CliRunner().invoke(app, ["query", "candles", "X", "--format", "xml"])
    assert done.exit_code == 2
    assert done.stderr.strip() == ("tapeflow: error: unknown format 'xml'; choose from table, "
                                   "csv, json, jsonl, parquet")
