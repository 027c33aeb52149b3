"""`tapeflow init`, `tapeflow generate` and `tapeflow demo`: getting a deployment ready."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of
from tapeflow.text import terminal_lines


@app.command()
def init(
    ctx: typer.Context,
    partitions: Annotated[
        int | None,
        typer.Option(min=1, help="Partitions of new topics (TAPEFLOW_KAFKA_PARTITIONS)."),
    ] = None,
    kafka: Annotated[bool, typer.Option(help="Also create the Kafka topics.")] = True,
) -> None:
    """Create the ClickHouse and Postgres schemas and the Kafka topics. Safe to run again.

    Example: tapeflow init --partitions 8
    """
    from jobs.init import check_schemas, run_init
    from jobs.local.services import resolve

    settings = settings_of(ctx, kafka_partitions=partitions)
    check_schemas(settings)  # refuse before any local service is started (run_init checks too)
    settings = resolve(settings, kafka=kafka, start_kafka=False)
    dsn = settings.postgres_url()
    assert dsn is not None  # resolve() started the embedded server when none was configured
    report = run_init(settings, dsn, kafka=kafka)
    for line in report.lines():
        typer.echo(terminal_lines(line))


@app.command()
def generate(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same market.")] = 7,
    symbols: Annotated[int, typer.Option(min=1, help="Number of symbols.")] = 20,
    accounts: Annotated[int, typer.Option(min=1, help="Number of trading accounts.")] = 5,
    minutes: Annotated[float, typer.Option(min=0.01, help="Minutes of market time.")] = 5.0,
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of ticks turned into labelled faults.")
    ] = 0.01,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write Parquet files (and truth labels) to this "
                     "directory."),
    ] = None,
    kafka: Annotated[bool, typer.Option(help="Produce to the Kafka topics.")] = False,
) -> None:
    """Generate a deterministic synthetic market with labelled faults, to Parquet or Kafka.

    Example: tapeflow generate --seed 7 --output data/   |   tapeflow generate --kafka
    """
    from jobs.generate import MarketRequest, run_generate
    from jobs.local.services import ensure_kafka

    if output is None and not kafka:
        raise typer.BadParameter("say where to: --output DIR, --kafka, or both")
    settings = settings_of(ctx)
    if kafka:
        settings = ensure_kafka(settings, start=False)
    request = MarketRequest(seed=seed, symbols=symbols, accounts=accounts, minutes=minutes,
                            fault_rate=fault_rate)
    for line in run_generate(settings, request, out=output, kafka=kafka).lines():
        typer.echo(terminal_lines(line))


@app.command()
def demo(
    ctx: typer.Context,
    minutes: Annotated[float, typer.Option(min=0.1, help="Minutes of market to generate.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then keep the flows running and serve the live "
                           "view from their process (docs/live-view.md).")
    ] = False,
) -> None:
    """Run Tapeflow locally end to end on the embedded defaults and summarise what came out.

    Starts the local broker and embedded stores, initialises them, generates a synthetic
    market with faults into Kafka, runs the dataflows over it, and summarises what came out.

    Example: tapeflow demo
    """
    from tapeflow.cli.demo import run_demo

    for line in run_demo(settings_of(ctx), minutes=minutes, seed=seed, serve=serve):
        typer.echo(terminal_lines(line))
