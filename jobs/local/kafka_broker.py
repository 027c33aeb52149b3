"""A single-node Apache Kafka 4.x broker in KRaft mode, started by the project itself.

No Docker engine is assumed (docs/design.md, "Local services"): the broker's jars come from Maven
Central through Maven into a cache directory that every clone on the machine reuses, and the
broker runs on the machine's Java 17 with its data under `<home>/kafka`. Every operation is
idempotent: `start` on a running broker reports it and returns, `stop` on a stopped one is a
no-op.

Authenticated by default (docs/security.md): clients authenticate with SASL/SCRAM-SHA-512 and
the KRaft `StandardAuthorizer` allows only what ACLs grant (nothing to an unauthenticated
client). The passwords are generated when the storage is formatted, written under
`<home>/kafka/credentials/` readable by their owner only (`jobs.local.kafka_credentials`), and
never put on a command line: the format command reads them from a Java argument file that is
deleted once read. `secure=False` (a developer's `TAPEFLOW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT`)
starts the broker as before: one PLAINTEXT listener, no authorizer.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.local.kafka_credentials import (
    ADMIN_USER,
    BROKER_USER,
    CONTROLLER_USER,
    MECHANISM,
    ROLE_USERS,
    LocalCredentials,
    credentials_dir,
    write_private,
)
from tapeflow.errors import UserError
from tapeflow.services import kafka

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
POM = HERE / "kafka-pom.xml"
LOG4J_CONFIG = HERE / "kafka-log4j2.properties"
START_TIMEOUT_S = 90.0


class LocalServiceError(UserError, RuntimeError):
    """A local service could not be prepared or started; the message says what to do."""


def cache_root(cache_dir: Path | None = None) -> Path:
    """`cache_dir` (the setting `TAPEFLOW_CACHE_DIR`), else the user's cache directory."""
    if cache_dir is not None:
        return cache_dir
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tapeflow"


def jars_dir(cache_dir: Path | None = None) -> Path:
    """Cache directory named by the pom's content, so a changed pom fetches afresh."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return cache_root(cache_dir) / f"kafka-jars-{digest}"


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Fetch the broker's jars with Maven unless the cache already holds them."""
    target = jars_dir(cache_dir)
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalServiceError(
            "Maven (mvn) is not on PATH: it is needed once to fetch the Kafka broker's jars. "
            "Install Maven, or point TAPEFLOW_KAFKA_BOOTSTRAP at an existing broker."
        )
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]
    log.info("fetching Kafka broker jars with Maven into %s", target)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise LocalServiceError("Maven could not fetch the Kafka jars: " + " | ".join(tail))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    marker.touch()
    return target


def broker_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a broker at `bootstrap` answers an unauthenticated metadata request within
    the timeout (a PLAINTEXT broker; an authenticated one refuses it)."""
    return kafka.broker_answers({"bootstrap.servers": bootstrap}, timeout_s)


def _quoted(arg: str) -> str:
    """One argument of a Java argument file (quoted: a path may hold spaces)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    answering: bool
    pid: int | None
    bootstrap: str
    log_file: Path

    def describe(self) -> str:
        if self.answering:
            owner = f"pid {self.pid}" if self.pid else "another process"
            return f"Kafka broker answering at {self.bootstrap} ({owner})"
        if self.running:
            return f"Kafka broker process {self.pid} is running but not answering yet"
        return f"no Kafka broker at {self.bootstrap}"


class LocalKafka:
    """The local development broker under `<home>/kafka`, listening on 127.0.0.1:`port`;
    authenticated (SASL/SCRAM, ACLs) unless `secure` is False."""

    def __init__(self, home: Path, port: int = 9092, cache_dir: Path | None = None, *,
                 secure: bool = True) -> None:
        self.dir = (home / "kafka").resolve()
        self.cache_dir = cache_dir
        self.port = port
        self.controller_port = port + 1
        self.secure = secure
        self.bootstrap = f"127.0.0.1:{port}"
        self.data_dir = self.dir / "data"
        self.config_file = self.dir / "server.properties"
        self.pid_file = self.dir / "broker.pid"
        self.log_file = self.dir / "broker.log"
        self.security_file = self.dir / "security"
        self.credentials = LocalCredentials(credentials_dir(home))

    def client_config(self, user: str = ADMIN_USER) -> dict[str, Any]:
        """librdkafka settings to reach this broker (as `user` when it is authenticated)."""
        if self.secure and self.credentials.exists():
            return self.credentials.client_config(self.bootstrap, user)
        return {"bootstrap.servers": self.bootstrap}

    def add_user(self, user: str) -> str:
        """Create a SCRAM user on the running broker (a subscriber, say) with a generated
        password, kept beside the others; returns the password. Idempotent."""
        password = self.credentials.ensure(user)
        kafka.upsert_scram_users(self.client_config(), {user: password})
        return password

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            # Reap it first if it is our own exited child, or it would linger as a zombie.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def status(self) -> BrokerStatus:
        pid = self._pid()
        answering = kafka.broker_answers(self.client_config(), 2.0)
        return BrokerStatus(pid is not None, answering, pid, self.bootstrap, self.log_file)

    def _listeners(self) -> dict[str, str]:
        if not self.secure:
            return {
                "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                             f"CONTROLLER://127.0.0.1:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        # Clients and the broker itself: SCRAM on CLIENT. The controller listener cannot use
        # SCRAM (its credentials live in the metadata it serves), so PLAIN with a user defined
        # in this file, which is why the file is readable by its owner only.
        broker_pw = self.credentials.password(BROKER_USER)
        controller_pw = self.credentials.password(CONTROLLER_USER)
        return {
            "listeners": f"CLIENT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "CLIENT",
            "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "listener.name.client.sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.client.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{BROKER_USER}" password="{broker_pw}";',
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{CONTROLLER_USER}" password="{controller_pw}" '
                f'user_{CONTROLLER_USER}="{controller_pw}";',
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER};User:{BROKER_USER};User:{CONTROLLER_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            **self._listeners(),
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created by `tapeflow init` with the configured partition count.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        write_private(self.config_file, "".join(f"{k}={v}\n" for k, v in lines.items()))

    def _jvm(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise LocalServiceError("Java (17 or newer) is not on PATH; the local broker needs it.")
        return [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]

    def _java(self, jars: Path, main: str, *args: str) -> list[str]:
        return [*self._jvm(), "-cp", f"{jars}/*", main, *args]

    def formatted_as(self) -> str | None:
        """How the storage was formatted: "scram", "plaintext" (also a storage of a version
        before authentication), or None when it is not formatted yet."""
        if not (self.data_dir / "meta.properties").exists():
            return None
        if self.security_file.is_file():
            return self.security_file.read_text().strip()
        return "plaintext"

    def _check_storage(self) -> None:
        """A storage formatted without SCRAM users cannot serve an authenticated broker (the
        first users are written when it is formatted); say what to do instead."""
        formatted = self.formatted_as()
        if self.secure and formatted == "plaintext":
            raise LocalServiceError(
                f"the local broker's storage {self.data_dir} was created without "
                "authentication; remove it to recreate it authenticated (its topics are "
                "lost), or set TAPEFLOW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT to keep it as it is")
        if self.secure and formatted == "scram" and not self.credentials.exists():
            raise LocalServiceError(
                f"the local broker's credentials under {self.credentials.dir} are missing; "
                f"restore them, or remove {self.dir} to start afresh (its topics are lost)")

    def _format(self, jars: Path) -> None:
        if self.formatted_as() is not None:
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        args = ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                str(self.config_file)]
        if self.secure:
            for user in (BROKER_USER, ADMIN_USER, *ROLE_USERS.values()):
                password = self.credentials.password(user)
                args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
        # The passwords go through a Java argument file (0600, deleted after), not argv,
        # which any local user can read in the process table.
        argfile = self.dir / "format.args"
        write_private(argfile, "\n".join(_quoted(a) for a in
                                          ["-cp", f"{jars}/*", *args]) + "\n")
        try:
            cmd = [*self._jvm(), f"@{argfile}"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            for user in (BROKER_USER, ADMIN_USER, *ROLE_USERS.values()):
                if self.secure:
                    output = output.replace(self.credentials.password(user), "***")
            raise LocalServiceError(f"formatting Kafka storage failed: {output}")
        self.security_file.write_text("scram\n" if self.secure else "plaintext\n")

    def start(self, timeout_s: float = START_TIMEOUT_S) -> BrokerStatus:
        """Start the broker unless one answers already; wait until it answers."""
        current = self.status()
        if current.answering:
            return current
        if current.running and current.pid is not None:
            return self._wait(current.pid, timeout_s)
        self._check_storage()
        jars = ensure_jars(self.cache_dir)
        if self.secure:
            for user in (BROKER_USER, CONTROLLER_USER, ADMIN_USER, *ROLE_USERS.values()):
                self.credentials.ensure(user)
        self._write_config()
        self._format(jars)
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                self._java(jars, "kafka.Kafka", str(self.config_file)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return self._wait(proc.pid, timeout_s)

    def _wait(self, pid: int, timeout_s: float) -> BrokerStatus:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if kafka.broker_answers(self.client_config(), timeout_s=1.0):
                return self.status()
            if self._pid() is None:
                break
            time.sleep(0.5)
        tail = self.log_file.read_text(errors="replace").splitlines()[-8:]
        raise LocalServiceError(
            f"the Kafka broker (pid {pid}) did not answer at {self.bootstrap} within "
            f"{timeout_s:.0f} s; last log lines ({self.log_file}):\n" + "\n".join(tail)
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker this home started; returns False when none was running."""
        pid = self._pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._pid() is not None:
            time.sleep(0.2)
        if self._pid() is not None:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
