"""`tapeflow run FLOW`: a dataflow, continuously or to the end of its input."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.spec import FLOWS
from tapeflow.cli.app import app, settings_of


@app.command("run")
def run_flow(
    ctx: typer.Context,
    flow: Annotated[str, typer.Argument(
        help=f"{', '.join(FLOWS)}: 'all' runs both flows in one process.")],
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker threads per process (TAPEFLOW_WORKERS).")
    ] = None,
    processes: Annotated[
        int, typer.Option(min=1, help="Local processes of one cluster (one per core).")
    ] = 1,
    recovery: Annotated[
        bool, typer.Option(help="Snapshot state and Kafka offsets; resume after a crash.")
    ] = True,
    snapshot_interval: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds between recovery snapshots "
                     "(TAPEFLOW_SNAPSHOT_INTERVAL_S, default 10)."),
    ] = None,
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
                     "(TAPEFLOW_METRICS_PORT, default 9464)."),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Also serve the live view from this process "
                           "(TAPEFLOW_WEB_HOST/PORT; docs/live-view.md).")
    ] = False,
    merge_wait: Annotated[
        float | None,
        typer.Option(min=0.0, help="Market flow: seconds of event time trades may run ahead "
                     "of quotes (or back) before being judged alone "
                     "(TAPEFLOW_MARKET_MERGE_WAIT_S; default 30, 3600 with --batch)."),
    ] = None,
) -> None:
    """Run a dataflow continuously, with recovery, until stopped (SIGTERM or Ctrl-C stop
    cleanly after a snapshot).

    Scale out with independent shards, one process per core (the fastest way,
    docs/design.md "Scale"): tapeflow run market --shard 0/2 & tapeflow run market --shard 1/2

    On the embedded ClickHouse (one process only) run both flows as one: tapeflow run all

    Recovery stores live under HOME/recovery/FLOW (TAPEFLOW_RECOVERY_DIR to choose).

    Example: tapeflow run market
    """
    from jobs.local.services import ensure_postgres
    from tapeflow.runtime.run import RunOptions, run

    if flow not in FLOWS:
        raise typer.BadParameter(f"unknown flow {flow!r}; choose from {', '.join(FLOWS)}")
    if serve and (processes > 1 or process_id is not None):
        raise typer.BadParameter("--serve runs in one process: not with --processes or a "
                                 "cluster (run `tapeflow serve` beside them)")
    if (process_id is None) != (addresses is None):
        raise typer.BadParameter("--process-id and --addresses go together")
    options = RunOptions(flow=flow, processes=processes, recovery=recovery, batch=batch,
                         process_id=process_id, addresses=addresses, shard=parse_shard(shard),
                         serve=serve)
    settings = settings_of(ctx, workers=workers, snapshot_interval_s=snapshot_interval,
                           metrics_port=metrics_port, market_merge_wait_s=merge_wait)
    # Every flow writes to Postgres: the trading flow its state, the market flow its feed-gap
    # alerts. Unset TAPEFLOW_POSTGRES_DSN means the embedded server, started here.
    raise typer.Exit(run(ensure_postgres(settings), options))


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """"I/K" -> (I, K) with 0 <= I < K."""
    if shard is None:
        return None
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise typer.BadParameter(f"--shard takes I/K with 0 <= I < K, not {shard!r}")
    return int(index), int(count)
