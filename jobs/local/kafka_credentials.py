"""The local broker's generated credentials, and the settings that use them.

The local broker (`jobs.local.kafka_broker`) runs with SASL/SCRAM and an authorizer unless a
developer asks for PLAINTEXT (`TAPEFLOW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT`). Its passwords are
generated when its storage is formatted and kept under `<home>/kafka/credentials/`, one file
per user holding the password (the directory 0700, the files 0600: the `*_FILE` convention,
so `TAPEFLOW_KAFKA_SASL_PASSWORD_FILE=.tapeflow/kafka/credentials/tapeflow-admin` works too).

Commands of the same home find them on their own (`with_local_credentials`, applied where
the command line builds its settings): the generic clients as the admin principal (on a
developer's own broker the developer is the operator), each flow as its own principal, so the
demo runs with the same separation as a deployment. Explicit Kafka credentials always win.

Kept free of Kafka client imports: the command line calls it for every command.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tapeflow.settings import LOCAL_KAFKA_PORT, Settings

ADMIN_USER = "tapeflow-admin"
"""The operator of the local broker: a super user (init, status, generate, alerts)."""
BROKER_USER = "tapeflow-broker"
"""The broker's own principal between brokers (a super user, never a client's)."""
CONTROLLER_USER = "controller"
"""The broker's principal on its controller listener (SASL/PLAIN, from its config file)."""
ROLE_USERS = {"market": "tapeflow-market", "trading": "tapeflow-trading"}
"""The flows' principals on the local broker (the settings' default user names)."""
MECHANISM = "SCRAM-SHA-512"
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def local_port(settings: Settings) -> int | None:
    """The port of the project-managed broker when the bootstrap names this machine."""
    host, _, port = settings.kafka.bootstrap.partition(":")
    if "," in settings.kafka.bootstrap or host not in LOCAL_HOSTS:
        return None
    return int(port or LOCAL_KAFKA_PORT)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner may read (created 0600, never wider)."""
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


class LocalCredentials:
    """One password file per user in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def exists(self) -> bool:
        return (self.dir / ADMIN_USER).is_file()

    def file(self, user: str) -> Path:
        return self.dir / user

    def password(self, user: str) -> str:
        return self.file(user).read_text().strip()

    def ensure(self, user: str) -> str:
        """The user's password, generated (and stored) if it has none yet."""
        path = self.file(user)
        if not path.is_file():
            write_private(path, secrets.token_hex(24))
        return self.password(user)

    def client_config(self, bootstrap: str, user: str = ADMIN_USER) -> dict[str, Any]:
        """librdkafka settings to reach the local broker as `user`."""
        return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": MECHANISM, "sasl.username": user,
                "sasl.password": self.password(user)}


def credentials_dir(home: Path) -> Path:
    return (home / "kafka" / "credentials").resolve()


def with_local_credentials(settings: Settings) -> Settings:
    """`settings` with the local broker's credentials when they apply: the bootstrap names
    this machine, that home's broker has generated credentials, and the settings give no
    Kafka password and no protocol other than SASL_PLAINTEXT (explicit settings win; a child
    process, which inherits the user names but never a password, finds them again here)."""
    kafka = settings.kafka
    if local_port(settings) is None:
        return settings
    if kafka.security_protocol not in (None, "SASL_PLAINTEXT"):
        return settings
    if any(p is not None for p in (kafka.sasl_password, kafka.market_password,
                                   kafka.trading_password)):
        return settings
    if kafka.sasl_username not in (None, ADMIN_USER):
        return settings
    local = LocalCredentials(credentials_dir(settings.home))
    if not local.exists():
        return settings
    overrides: dict[str, Any] = {
        "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": MECHANISM,
        "kafka_sasl_username": ADMIN_USER,
        "kafka_sasl_password": SecretStr(local.password(ADMIN_USER))}
    for role, user in ROLE_USERS.items():
        if local.file(user).is_file():
            overrides[f"kafka_{role}_username"] = user
            overrides[f"kafka_{role}_password"] = SecretStr(local.password(user))
    return settings.with_overrides(**overrides)
