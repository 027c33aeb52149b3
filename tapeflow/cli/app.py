"""Commands of the `tapeflow` CLI. Each is thin: parse, build settings, call a job, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tapeflow.settings import Settings

app = typer.Typer(
    name="tapeflow",
    help="Streaming pipeline for trading platforms: clean ticks, exact candles, positions, "
    "P&L and risk alerts.\n\nExample: tapeflow demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dev_app = typer.Typer(help="Local development services.", no_args_is_help=True)
kafka_app = typer.Typer(
    help="The local Apache Kafka broker (KRaft, jars from Maven Central).\n\n"
    "Example: tapeflow dev kafka start",
    no_args_is_help=True,
)
dev_app.add_typer(kafka_app, name="kafka")
app.add_typer(dev_app, name="dev")


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Local state directory [TAPEFLOW_HOME].")
    ] = None,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers [TAPEFLOW_KAFKA_BOOTSTRAP].")
    ] = None,
    clickhouse_dsn: Annotated[
        str | None,
        typer.Option(help="chdb:///path or http://host:8123 [TAPEFLOW_CLICKHOUSE_DSN]."),
    ] = None,
    postgres_dsn: Annotated[
        str | None, typer.Option(help="Postgres DSN; unset: embedded [TAPEFLOW_POSTGRES_DSN].")
    ] = None,
    topic_prefix: Annotated[
        str | None, typer.Option(help="Prefix for every topic name [TAPEFLOW_TOPIC_PREFIX].")
    ] = None,
) -> None:
    ctx.obj = Settings().with_overrides(
        home=home, kafka_bootstrap=kafka_bootstrap, clickhouse_dsn=clickhouse_dsn,
        postgres_dsn=postgres_dsn, topic_prefix=topic_prefix,
    )


def _settings(ctx: typer.Context, **overrides: Any) -> Settings:
    settings: Settings = ctx.obj
    return settings.with_overrides(**overrides)


@kafka_app.command("start")
def kafka_start(ctx: typer.Context) -> None:
    """Start the local broker (fetching its jars once) and wait until it answers.

    Example: tapeflow dev kafka start
    """
    from jobs.local.services import local_broker

    broker = local_broker(_settings(ctx))
    if broker is None:
        raise typer.BadParameter("the bootstrap address is not this machine; nothing to start")
    typer.echo(broker.start().describe())


@kafka_app.command("stop")
def kafka_stop(ctx: typer.Context) -> None:
    """Stop the local broker started from this home directory.

    Example: tapeflow dev kafka stop
    """
    from jobs.local.services import local_broker

    broker = local_broker(_settings(ctx))
    stopped = broker is not None and broker.stop()
    typer.echo("Kafka broker stopped" if stopped else "no local Kafka broker was running")


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the local broker runs and answers; exit 1 when it does not answer.

    Example: tapeflow dev kafka status
    """
    from jobs.local.services import local_broker

    broker = local_broker(_settings(ctx))
    if broker is None:
        raise typer.BadParameter("the bootstrap address is not this machine")
    status = broker.status()
    typer.echo(status.describe())
    raise typer.Exit(0 if status.answering else 1)


@app.command()
def init(
    ctx: typer.Context,
    partitions: Annotated[
        int | None, typer.Option(min=1, help="Partitions of new topics [TAPEFLOW_PARTITIONS].")
    ] = None,
    kafka: Annotated[bool, typer.Option(help="Also create the Kafka topics.")] = True,
) -> None:
    """Create the ClickHouse and Postgres schemas and the Kafka topics. Safe to run again.

    Example: tapeflow init --partitions 8
    """
    from jobs.init import check_schemas, run_init
    from jobs.local.services import resolve

    settings = _settings(ctx, partitions=partitions)
    check_schemas(settings)  # refuse before any local service is started (run_init checks too)
    settings = resolve(settings, kafka=kafka, start_kafka=False)
    assert settings.postgres_dsn is not None
    report = run_init(settings, settings.postgres_dsn.get_secret_value(), kafka=kafka)
    for line in report.lines():
        typer.echo(line)


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
    out: Annotated[
        Path | None, typer.Option(help="Write Parquet files (and truth labels) here.")
    ] = None,
    kafka: Annotated[bool, typer.Option(help="Produce to the Kafka topics.")] = False,
) -> None:
    """Generate a deterministic synthetic market with labelled faults, to Parquet or Kafka.

    Example: tapeflow generate --seed 7 --out data/   |   tapeflow generate --kafka
    """
    from jobs.generate import MarketRequest, run_generate
    from jobs.local.services import ensure_kafka

    if out is None and not kafka:
        raise typer.BadParameter("say where to: --out DIR, --kafka, or both")
    settings = _settings(ctx)
    if kafka:
        ensure_kafka(settings, start=False)
    request = MarketRequest(seed=seed, symbols=symbols, accounts=accounts, minutes=minutes,
                            fault_rate=fault_rate)
    for line in run_generate(settings, request, out=out, kafka=kafka).lines():
        typer.echo(line)


@app.command()
def demo(
    ctx: typer.Context,
    minutes: Annotated[float, typer.Option(min=0.1, help="Minutes of market to generate.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Run Tapeflow locally end to end on the embedded defaults and summarise what came out.

    Starts the local broker and embedded stores, initialises them, generates a synthetic
    market with faults into Kafka, runs the dataflows over it, and summarises what came out.

    Example: tapeflow demo
    """
    from tapeflow.cli.demo import run_demo

    for line in run_demo(_settings(ctx), minutes=minutes, seed=seed):
        typer.echo(line)


@app.command("run")
def run_flow(
    ctx: typer.Context,
    flow: Annotated[str, typer.Argument(help="market, trading, or all (both in one process)")],
    workers: Annotated[int, typer.Option(min=1, help="Worker threads per process.")] = 1,
    processes: Annotated[
        int, typer.Option(min=1, help="Local processes of one cluster (one per core).")
    ] = 1,
    recovery: Annotated[
        bool, typer.Option(help="Snapshot state and Kafka offsets; resume after a crash.")
    ] = True,
    recovery_dir: Annotated[
        Path | None, typer.Option(help="Recovery partitions [default: HOME/recovery/FLOW].")
    ] = None,
    recovery_partitions: Annotated[
        int, typer.Option(min=1, help="Recovery partitions, fixed once created.")
    ] = 1,
    snapshot_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between recovery snapshots.")
    ] = 10.0,
    batch: Annotated[
        bool, typer.Option(help="Stop at the end of what the topics hold now.")
    ] = False,
    process_id: Annotated[
        int | None, typer.Option(help="This process's index in a cluster (with --addresses).")
    ] = None,
    addresses: Annotated[
        str | None, typer.Option(help='Cluster addresses, "host:port;host:port".')
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="Run shard I of K (I/K): only partitions p with p % K == I, as an "
                     "independent flow with its own recovery store."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Prometheus /metrics port, 0: off "
                     "[TAPEFLOW_METRICS_PORT, default 9464]."),
    ] = None,
    merge_wait: Annotated[
        float | None,
        typer.Option(min=0.0, help="Market flow: seconds of event time trades may run ahead "
                     "of quotes (or back) before being judged alone [30; 3600 with --batch]."),
    ] = None,
) -> None:
    """Run a dataflow continuously, with recovery, until stopped.

    Scale out with independent shards, one process per core (the fastest way, DESIGN.md):
    tapeflow run market --shard 0/2 & tapeflow run market --shard 1/2

    On the embedded ClickHouse (one process only) run both flows as one: tapeflow run all

    Example: tapeflow run market
    """
    from jobs.local.services import ensure_postgres
    from tapeflow.runtime.run import FLOW_MODULES, RunOptions
    from tapeflow.runtime.run import run as run_dataflow

    if flow not in FLOW_MODULES:
        raise typer.BadParameter(f"unknown flow {flow!r}; choose from {', '.join(FLOW_MODULES)}")
    if (process_id is None) != (addresses is None):
        raise typer.BadParameter("--process-id and --addresses go together")
    shard_of: tuple[int, int] | None = None
    if shard is not None:
        index, _, count = shard.partition("/")
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            raise typer.BadParameter(f"--shard takes I/K with 0 <= I < K, not {shard!r}")
        shard_of = (int(index), int(count))
    options = RunOptions(flow=flow, workers=workers, processes=processes, recovery=recovery,
                         recovery_dir=recovery_dir, recovery_partitions=recovery_partitions,
                         snapshot_s=snapshot_interval, batch=batch, process_id=process_id,
                         addresses=addresses, shard=shard_of, merge_wait_s=merge_wait)
    # Every flow writes to Postgres: the trading flow its state, the market flow its feed-gap
    # alerts. Unset TAPEFLOW_POSTGRES_DSN means the embedded server, started here.
    settings = ensure_postgres(_settings(ctx, metrics_port=metrics_port))
    raise typer.Exit(run_dataflow(settings, options))
