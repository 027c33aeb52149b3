"""`tapeflow dev kafka start|stop|status`: the local Apache Kafka broker."""

from __future__ import annotations

import typer

from tapeflow.cli.app import app, settings_of

dev_app = typer.Typer(help="Local development services.", no_args_is_help=True)
kafka_app = typer.Typer(
    help="The local Apache Kafka broker (KRaft, jars from Maven Central).\n\n"
    "Example: tapeflow dev kafka start",
    no_args_is_help=True,
)
dev_app.add_typer(kafka_app, name="kafka")
app.add_typer(dev_app, name="dev")


@kafka_app.command("start")
def kafka_start(ctx: typer.Context) -> None:
    """Start the local broker (fetching its jars once) and wait until it answers.

    Example: tapeflow dev kafka start
    """
    from jobs.local.services import local_broker

    broker = local_broker(settings_of(ctx))
    if broker is None:
        raise typer.BadParameter("the bootstrap address is not this machine; nothing to start")
    typer.echo(broker.start().describe())


@kafka_app.command("stop")
def kafka_stop(ctx: typer.Context) -> None:
    """Stop the local broker started from this home directory.

    Example: tapeflow dev kafka stop
    """
    from jobs.local.services import local_broker

    broker = local_broker(settings_of(ctx))
    stopped = broker is not None and broker.stop()
    typer.echo("Kafka broker stopped" if stopped else "no local Kafka broker was running")


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the local broker runs and answers; exit 1 when it does not answer.

    Example: tapeflow dev kafka status
    """
    from jobs.local.services import local_broker

    broker = local_broker(settings_of(ctx))
    if broker is None:
        raise typer.BadParameter("the bootstrap address is not this machine")
    status = broker.status()
    typer.echo(status.describe())
    raise typer.Exit(0 if status.answering else 1)
