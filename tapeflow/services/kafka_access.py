"""Who may do what on the Kafka cluster: every principal's ACLs, derived from the settings.

One table, three readers: `tapeflow init` grants it (`tapeflow.services.kafka.grant_acls`),
each flow checks its own rows before it starts (`tapeflow.services.kafka.check_access`, so a
missing ACL is one line naming it rather than a flow that hangs or dead-letters its input),
and docs/security.md prints it (`tests/unit/test_kafka_access.py` keeps the two equal).

Least privilege, by component (docs/security.md):

- the market flow reads the tape and writes marks, candles, dead letters and feed-gap alerts;
- the trading flow reads executions and marks, writes dead letters, `risk.alerts` and the desk
  topics (every alert topic it writes, it also reads: its sink skips alerts already there);
- a subscriber reads the alert topics of its desks (`*`: `risk.alerts` and every desk), the
  candles (market data is every desk's), and its
  own consumer groups, `PRINCIPAL.*`, so it can neither read another desk's alerts nor join
  or move another subscriber's group;
- the admin principal (`tapeflow init`, operators' commands) is a super user of the broker:
  it creates topics, grants these ACLs and manages credentials, which is all of the cluster.

Topics and the flows' groups are named under the deployment's topic prefix, so environments
sharing a broker are as separate as their principals; a subscriber's groups are named after
the subscriber.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schemas.catalogue import (
    TOPIC_ALERTS,
    TOPIC_CANDLES,
    TOPIC_CASH,
    TOPIC_DLQ,
    TOPIC_EXECUTIONS,
    TOPIC_MARKS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
)
from tapeflow.settings import DESK_ALERTS_PREFIX, KafkaRole, Settings

Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["read", "write"]
ALL_DESKS = "*"


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW `principal` `operation` on the `resource` named `name` (or every name starting
    with it, when `pattern` is prefixed). READ and WRITE imply DESCRIBE on the broker."""

    principal: str
    """The SASL user, without `User:`."""
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation
    why: str = field(default="", compare=False)
    """What the principal does with it (docs/security.md's table)."""

    def describe(self) -> str:
        """The ACL in words, for error messages: `ALLOW User:x WRITE on topic t`."""
        scope = f"{self.resource}s starting with {self.name}" if self.pattern == "prefixed" \
            else f"{self.resource} {self.name}"
        return f"ALLOW User:{self.principal} {self.operation.upper()} on {scope}"


def flow_group(settings: Settings, flow: str) -> str:
    """The consumer group of a flow (`tapeflow run FLOW`; shards append `-shardIofK`)."""
    return f"{settings.kafka.topic_prefix}tapeflow-{flow}"


def subscriber_group_prefix(principal: str) -> str:
    """Every consumer group of a subscriber starts with this (its ACL is prefixed)."""
    return f"{principal}."


def _topic(principal: str, name: str, ops: tuple[Operation, ...], why: str, *,
           pattern: Pattern = "literal") -> list[Grant]:
    return [Grant(principal, "topic", name, pattern, op, why) for op in ops]


def _groups(principal: str, settings: Settings, flow: str) -> list[Grant]:
    """The flow's own groups (shards too), and the one `tapeflow run all` shares."""
    return [Grant(principal, "group", flow_group(settings, flow), "prefixed", "read",
                  "its offsets, committed for lag monitoring (shards too); its readers' group"),
            Grant(principal, "group", flow_group(settings, "all"), "prefixed", "read",
                  "the group both parts of `tapeflow run all` commit to")]


READ: tuple[Operation, ...] = ("read",)
WRITE: tuple[Operation, ...] = ("write",)
BOTH: tuple[Operation, ...] = ("read", "write")


def component_grants(settings: Settings, role: KafkaRole) -> list[Grant]:
    """What the market or trading flow needs, granted to its principal."""
    t = settings.topic
    if role == "market":
        who = settings.kafka.market_username
        return [*_topic(who, t(TOPIC_TRADES), READ, "the tape in"),
                *_topic(who, t(TOPIC_QUOTES), READ, "the tape in"),
                *_topic(who, t(TOPIC_MARKS), WRITE, "marks out"),
                *_topic(who, t(TOPIC_CANDLES), WRITE, "closed and corrected candles out"),
                *_topic(who, t(TOPIC_DLQ), WRITE, "dead letters"),
                *_topic(who, t(TOPIC_ALERTS), BOTH, "feed-gap alerts; read: the alerts "
                        "already there are not sent again"),
                *_groups(who, settings, "market")]
    who = settings.kafka.trading_username
    return [*_topic(who, t(TOPIC_EXECUTIONS), READ, "execution reports in"),
            *_topic(who, t(TOPIC_CASH), READ, "cash movements in"),
            *_topic(who, t(TOPIC_MARKS), READ, "marks in"),
            *_topic(who, t(TOPIC_DLQ), WRITE, "dead letters"),
            *_topic(who, t(TOPIC_ALERTS), BOTH, "every alert; read: as above"),
            *_topic(who, t(DESK_ALERTS_PREFIX), BOTH, "a copy of each alert to its "
                    "account's desk topic; read: as above", pattern="prefixed"),
            *_groups(who, settings, "trading")]


def subscriber_grants(settings: Settings, principal: str, desks: frozenset[str]) -> list[Grant]:
    """A subscriber's alert topics (its desks'; `*`: every alert topic) and its groups."""
    if ALL_DESKS in desks:
        topics = _topic(principal, settings.topic(TOPIC_ALERTS), READ,
                        "every alert topic (`*`)", pattern="prefixed")
    else:
        topics = [g for d in sorted(desks)
                  for g in _topic(principal, settings.desk_topic(d), READ, f"desk {d}'s alerts")]
    topics += _topic(principal, settings.topic(TOPIC_CANDLES), READ,
                     "candles: market data, the same for every desk (the live view)")
    return [*topics, Grant(principal, "group", subscriber_group_prefix(principal), "prefixed",
                           "read", "its own consumer groups, and no one else's")]


def all_grants(settings: Settings) -> list[Grant]:
    """Every ACL of the deployment: both flows' and every configured subscriber's."""
    out = [*component_grants(settings, "market"), *component_grants(settings, "trading")]
    for principal, desks in sorted((settings.access.subscribers or {}).items()):
        out += subscriber_grants(settings, principal, desks)
    return out


def needed(settings: Settings, role: KafkaRole,
           group: str | None = None) -> list[tuple[str, Grant]]:
    """What a flow touches, for its check at start: (the concrete resource name, the grant
    that covers it) for each of its topic grants (a prefixed one once per configured desk),
    its own consumer group (its readers name it) and `group`, the one this run commits to
    (`tapeflow run all`: a shared one)."""
    grants = component_grants(settings, role)
    desks = sorted(settings.access.desks or {})
    out: list[tuple[str, Grant]] = []
    for name in sorted({flow_group(settings, role), group or flow_group(settings, role)}):
        covering = [g for g in grants if g.resource == "group" and name.startswith(g.name)]
        out.append((name, covering[0] if covering else
                    Grant(grants[0].principal, "group", name, "literal", "read")))
    for grant in grants:
        if grant.resource == "group":
            continue
        if grant.pattern == "prefixed":
            out += [(settings.desk_topic(desk), grant) for desk in desks]
        else:
            out.append((grant.name, grant))
    return out


START = "<!-- acl-table:start (generated by `python -m tapeflow.services.kafka_access`) -->"
END = "<!-- acl-table:end -->"
SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
EXAMPLE = {"access_desks": "desk-a=ACC001,ACC002;desk-b=ACC003",
           "access_subscribers": "risk-a=desk-a;ops=*",
           "kafka_topic_prefix": "", "kafka_market_username": "tapeflow-market",
           "kafka_trading_username": "tapeflow-trading"}
"""The deployment docs/security.md's table is drawn for."""


def table(grants: list[Grant]) -> str:
    """A markdown table of `grants`, one row per principal and resource (operations joined)."""
    rows: dict[tuple[str, str, str, str], tuple[list[str], str]] = {}
    for g in grants:
        ops, _ = rows.setdefault((g.principal, g.resource, g.name, g.pattern), ([], g.why))
        ops.append(g.operation.upper())
    lines = [START, "", "| principal | resource | name | pattern | operations | why |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| `User:{who}` | {res} | `{name}` | {pat} | {', '.join(ops)} | {why} |"
              for (who, res, name, pat), (ops, why) in rows.items()]
    return "\n".join([*lines, "", END])


def replace_in(text: str, grants: list[Grant]) -> str:
    """`text` with the generated table between the markers."""
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    return head + table(grants) + tail


def example_grants() -> list[Grant]:
    return all_grants(Settings(_env_file=None, **EXAMPLE))


def main() -> None:
    SECURITY_DOC.write_text(replace_in(SECURITY_DOC.read_text(), example_grants()))
    print(f"ACL table written to {SECURITY_DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
