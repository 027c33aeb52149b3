"""Kafka plumbing shared by every component: the probe, topic metadata, topic creation, lag,
and access: ACLs, credentials and the check of a principal's rights.

Producers live with the sinks (`sinks.kafka`) and consumers with the sources (`sources.kafka`);
what is neither, the admin side of the cluster, is here, so there is one place that knows how
long to wait for a broker, how to say that it did not answer, and how to say which ACL is
missing (the table of who needs what is `tapeflow.services.kafka_access`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from tapeflow.errors import StoreUnavailableError, UserError
from tapeflow.services.kafka_access import Grant

PROBE_LOG = logging.getLogger("tapeflow.kafka.probe")
PROBE_LOG.setLevel(logging.CRITICAL)  # "connection refused" is the answer we ask for, not news
ADMIN_LOG = logging.getLogger("tapeflow.kafka.admin")
"""librdkafka's own lines from admin clients, through logging rather than straight to stderr:
an admin client freed with an answer nobody waited for any more says "Purging 1 unserved
events from background queue" (level 6, info), which is not news to an operator and broke the
one-line errors of the commands that had asked it something."""


class TopicError(UserError):
    """A topic is missing or unusable; the message says which and what to run."""


class AccessDeniedError(UserError):
    """The broker refuses this principal something it needs; the message names the ACL."""


def admin_client(conf: Mapping[str, Any], *, quiet: bool = False,
                 timeout_s: float | None = None) -> AdminClient:
    """An admin client over `conf` (`Settings.kafka_config()`); `quiet` sends librdkafka's
    connection chatter to a muted logger (a probe expects refusals)."""
    extra: dict[str, Any] = {"logger": PROBE_LOG if quiet else ADMIN_LOG}
    if timeout_s is not None:
        extra["socket.timeout.ms"] = max(1, int(timeout_s * 1000))
    return AdminClient({**conf, **extra})


def broker_answers(conf: Mapping[str, Any], timeout_s: float = 2.0) -> bool:
    """True when a broker answers a metadata request within `timeout_s`."""
    return probe(conf, timeout_s) is None


def probe(conf: Mapping[str, Any], timeout_s: float = 2.0) -> str | None:
    """None when a broker answers a metadata request within `timeout_s`; else why not, for a
    message: the broker refused the credentials, or nothing answered (which is also what a
    client without credentials sees from an authenticated broker: it drops the connection)."""
    refused: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            refused.append(err.str())

    admin = admin_client({**conf, "error_cb": on_error}, quiet=True,
                         timeout_s=min(timeout_s, 1.0))
    try:
        answered = bool(admin.list_topics(timeout=timeout_s).brokers)
    except KafkaException:
        answered = False
    admin.poll(0)  # serves the error callbacks (an unserved event is logged at exit)
    if answered:
        return None
    if refused:
        return f"the broker refused the credentials ({refused[0].split(': ', 1)[-1]})"
    return "no answer"


def partition_counts(conf: Mapping[str, Any], topics: Iterable[str], *,
                     timeout_s: float = 10.0, bootstrap: str = "") -> dict[str, int]:
    """The partition count of each topic; raises when the broker does not answer in time
    (Bytewax's Kafka source would wait forever) or a topic is missing or unusable."""
    admin = admin_client(conf)
    where = bootstrap or str(conf.get("bootstrap.servers", ""))
    counts: dict[str, int] = {}
    for topic in topics:
        try:
            meta = admin.list_topics(topic, timeout=timeout_s)
        except Exception as exc:
            raise StoreUnavailableError(
                f"Kafka at {where} did not answer within {timeout_s} s: {exc}") from None
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            why = found.error if found is not None and found.error is not None else "no partitions"
            raise TopicError(f"topic {topic} is not usable ({why}); run `tapeflow init`")
        counts[topic] = len(found.partitions)
    return counts


def create_topics(conf: Mapping[str, Any], topics: Iterable[str], partitions: int,
                  timeout_s: float = 30.0) -> tuple[list[str], dict[str, int]]:
    """Create the missing `topics` with `partitions` each and wait until they have leaders;
    existing ones are left as they are. Returns (created, {existing: partition count})."""
    admin = admin_client(conf)
    meta = admin.list_topics(timeout=timeout_s)
    wanted = list(topics)
    existing = {t: len(meta.topics[t].partitions) for t in wanted if t in meta.topics}
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=1)
               for t in wanted if t not in existing]
    created = []
    if missing:
        for topic, future in admin.create_topics(missing, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                created.append(topic)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
                existing[topic] = partitions
    _wait_for_leaders(admin, created, timeout_s)
    return created, existing


def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout_s: float) -> None:
    """Return once every partition of `topics` has a leader: a new topic is not usable before."""
    deadline = time.monotonic() + timeout_s
    while topics:
        meta = admin.list_topics(timeout=timeout_s)
        ready = all(
            t in meta.topics and meta.topics[t].error is None
            and all(p.leader >= 0 for p in meta.topics[t].partitions.values())
            for t in topics
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {', '.join(topics)} have no partition leaders yet")
        time.sleep(0.1)


def group_lags(conf: Mapping[str, Any], groups: Iterable[str], topics: Mapping[str, int],
               timeout_s: float) -> list[tuple[str, str, int, int]]:
    """(group, topic, messages behind the end, partitions committed) for every group and topic
    where the group has committed offsets; each partition's end offset is asked once."""
    out: list[tuple[str, str, int, int]] = []
    ends: dict[tuple[str, int], int] = {}
    for group in groups:
        consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
        try:
            for topic, count in topics.items():
                parts = [TopicPartition(topic, p) for p in range(count)]
                committed = [tp for tp in consumer.committed(parts, timeout=timeout_s)
                             if tp.offset >= 0]
                if not committed:
                    continue
                lag = 0
                for tp in committed:
                    where = (tp.topic, tp.partition)
                    if where not in ends:
                        ends[where] = consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
                    lag += max(0, ends[where] - tp.offset)
                out.append((group, topic, lag, len(committed)))
        finally:
            consumer.close()
    return out


def consumer_groups(conf: Mapping[str, Any], prefix: str, timeout_s: float) -> list[str] | None:
    """The consumer groups whose id starts with `prefix`, sorted; None when the broker cannot
    list them (an old broker, or no permission to describe groups)."""
    admin = admin_client(conf)  # kept alive until the answer: a freed client cancels it
    try:
        listed = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout_s)
    except Exception:
        return None
    if listed.errors and not listed.valid:
        return None
    return sorted(g.group_id for g in listed.valid if g.group_id.startswith(prefix))


_RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATION = {"read": AclOperation.READ, "write": AclOperation.WRITE}
_REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
            KafkaError.CLUSTER_AUTHORIZATION_FAILED}


def _binding(grant: Grant) -> AclBinding:
    return AclBinding(_RESOURCE[grant.resource], grant.name, _PATTERN[grant.pattern],
                      f"User:{grant.principal}", "*", _OPERATION[grant.operation],
                      AclPermissionType.ALLOW)


def _code(exc: BaseException) -> Any:
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


def grant_acls(conf: Mapping[str, Any], grants: Iterable[Grant],
               timeout_s: float = 30.0) -> int | None:
    """Create the ACLs of `grants` (granting one that exists changes nothing); returns how
    many were asked for, or None when the broker has no authorizer (nothing to grant)."""
    wanted = sorted(set(grants))
    if not wanted:
        return 0
    admin = admin_client(conf)  # kept alive until the answers: a freed client cancels them
    futures = admin.create_acls([_binding(g) for g in wanted], request_timeout=timeout_s)
    try:
        for future in futures.values():
            future.result(timeout=timeout_s)
    except KafkaException as exc:
        if _code(exc) == KafkaError.SECURITY_DISABLED:
            return None
        raise
    return len(wanted)


def revoke_acls(conf: Mapping[str, Any], grants: Iterable[Grant], timeout_s: float = 30.0) -> int:
    """Delete the ACLs of `grants`; returns how many bindings were deleted."""
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                                b.operation, b.permission_type)
               for b in (_binding(g) for g in grants)]
    if not filters:
        return 0
    admin = admin_client(conf)  # kept alive until the answers: a freed client cancels them
    futures = admin.delete_acls(filters, request_timeout=timeout_s)
    return sum(len(future.result(timeout=timeout_s)) for future in futures.values())


def upsert_scram_users(conf: Mapping[str, Any], passwords: Mapping[str, str],
                       timeout_s: float = 30.0) -> None:
    """Create (or change the password of) SCRAM-SHA-512 users."""
    if not passwords:
        return
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    admin = admin_client(conf)  # kept alive until the answers: a freed client cancels them
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, info, password.encode())
         for user, password in sorted(passwords.items())], request_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout=timeout_s)


_SETTLING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
             KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError._TIMED_OUT}
"""Answers of a cluster still settling (a new broker's group coordinator), worth asking again."""


def _authorized(admin: AdminClient, resource: str, names: list[str],
                timeout_s: float) -> dict[str, set[Any] | None]:
    """The operations the client's principal may perform on each topic or group of `names`
    (None: the broker does not say, as without an authorizer; empty: refused). Asked again
    while the cluster settles, up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    out: dict[str, set[Any] | None] = {}
    pending = list(names)
    while pending:
        if resource == "topic":
            futures = admin.describe_topics(TopicCollection(pending),
                                            include_authorized_operations=True,
                                            request_timeout=timeout_s)
        else:
            futures = admin.describe_consumer_groups(pending, include_authorized_operations=True,
                                                     request_timeout=timeout_s)
        again = []
        for name, future in futures.items():
            try:
                ops = future.result(timeout=timeout_s).authorized_operations
            except KafkaException as exc:
                code = _code(exc)
                if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise TopicError(f"topic {name} does not exist; run `tapeflow init`") from None
                if code in _SETTLING and time.monotonic() < deadline:
                    again.append(name)
                    continue
                if code not in _REFUSED:
                    raise StoreUnavailableError(f"Kafka did not describe {resource} {name}: "
                                                f"{exc}") from None
                ops = []
            out[name] = None if ops is None else set(ops)
        pending = again
        if pending:
            time.sleep(0.2)
    return out


def check_access(conf: Mapping[str, Any], needs: Iterable[tuple[str, Grant]],
                 timeout_s: float = 10.0) -> None:
    """Raise `AccessDeniedError` naming the first ACL this client's principal lacks among
    `needs` ((topic or group name, the grant that should cover it)), `TopicError` for a
    missing topic. Asks the broker what the principal may do (Kafka's authorized operations),
    so it costs two requests and changes nothing; a broker without an authorizer allows all."""
    wanted = list(needs)
    principal = str(conf.get("sasl.username") or "ANONYMOUS")
    admin = admin_client(conf)  # kept alive until the answers
    allowed: dict[tuple[str, str], set[Any] | None] = {}
    for resource in ("topic", "group"):
        names = sorted({name for name, g in wanted if g.resource == resource})
        if names:
            found = _authorized(admin, resource, names, timeout_s)
            allowed.update({(resource, name): ops for name, ops in found.items()})
    for name, grant in wanted:
        ops = allowed.get((grant.resource, name))
        if ops is None or AclOperation.ALL in ops or _OPERATION[grant.operation] in ops:
            continue
        missing = Grant(principal, grant.resource, grant.name, grant.pattern, grant.operation)
        raise AccessDeniedError(
            f"Kafka refuses {grant.operation.upper()} on {grant.resource} {name} to "
            f"User:{principal}: missing ACL ({missing.describe()}); `tapeflow init` grants "
            "the flows' ACLs (docs/security.md)")
