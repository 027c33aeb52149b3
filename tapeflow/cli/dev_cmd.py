"""`tapeflow dev kafka start|stop|status|add-user`: the local Apache Kafka broker."""

from __future__ import annotations

from typing import Annotated

import typer

from tapeflow.cli.app import app, settings_of

dev_app = typer.Typer(help="Local development services.", no_args_is_help=True)
kafka_app = typer.Typer(
    help="The local Apache Kafka broker (KRaft, jars from Maven Central), authenticated with "
    "SASL/SCRAM and ACLs unless TAPEFLOW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT.\n\n"
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
    if broker.secure:
        typer.echo(f"authenticated (SASL/SCRAM, ACLs); credentials in {broker.credentials.dir}, "
                   "used by the commands of this home")
    else:
        typer.echo("unauthenticated (PLAINTEXT, no ACLs), as asked")


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


@kafka_app.command("add-user")
def kafka_add_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user (principal) name, e.g. risk-a.")],
) -> None:
    """Create a SASL/SCRAM user on the running local broker, e.g. a subscriber named in
    TAPEFLOW_ACCESS_SUBSCRIBERS; its password is generated into a file readable by you only.

    Example: tapeflow dev kafka add-user risk-a
    """
    from jobs.local.services import local_broker
    from tapeflow.settings.base import identifier

    broker = local_broker(settings_of(ctx))
    if broker is None or not broker.secure:
        raise typer.BadParameter("users exist only on the authenticated local broker")
    try:
        identifier(name, dash=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not broker.status().answering:
        raise typer.BadParameter("the local broker is not running: tapeflow dev kafka start")
    broker.add_user(name)
    typer.echo(f"User:{name} can sign in with SCRAM-SHA-512; password in "
               f"{broker.credentials.file(name)} (TAPEFLOW_KAFKA_SASL_PASSWORD_FILE)")
