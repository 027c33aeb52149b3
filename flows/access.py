"""A flow's check of its own Kafka rights, before it starts (docs/security.md)."""

from __future__ import annotations

from tapeflow.services.kafka import check_access
from tapeflow.services.kafka_access import needed
from tapeflow.settings import KafkaRole, Settings


def check_kafka_access(settings: Settings, role: KafkaRole, group: str | None,
                       timeout_s: float | None = None) -> None:
    """The principal of `role` may do on the broker all that the access table says the flow
    needs (`tapeflow.services.kafka_access.needed`), with `group` as its consumer group;
    else one line naming the missing ACL (`AccessDeniedError`), where the dataflow would
    stall on a refused fetch or stop at its first refused write."""
    check_access(settings.kafka_config(role), needed(settings, role, group),
                 timeout_s or settings.runtime.service_timeout_s)
