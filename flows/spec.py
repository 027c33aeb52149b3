"""One shape for every flow: what the runtime asks of it, and where to find it by name.

The command line and the runtime know flows only through this module: `tapeflow run NAME`
loads `spec(NAME)` and calls `build(settings, request)`. Adding a flow is a module with a
`SPEC` and a line in `FLOWS`; nothing else branches on flow names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the command line reads the names without loading Bytewax
    from bytewax.dataflow import Dataflow

    from tapeflow.settings import Settings

FLOWS: dict[str, str] = {
    "market": "flows.market",
    "trading": "flows.trading",
    "all": "flows.all",
}
"""Flow name -> the module whose `SPEC` builds it."""


@dataclass(frozen=True)
class FlowRequest:
    """What one run wants of a flow, beyond the settings."""

    batch: bool = False
    """Stop at the end of what the topics hold now (and judge with batch-sized waits)."""
    shard: tuple[int, int] | None = None
    """(i, K): read only partitions p with p % K == i, as an independent flow."""
    group: str | None = None
    """Consumer group the snapshot offsets are committed to, for lag monitoring."""


class FlowSpec(Protocol):
    """A flow the runtime can run."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str:
        """One line for `tapeflow run --help`."""
        ...

    def build(self, settings: Settings, request: FlowRequest) -> Dataflow:
        """The dataflow, after checking that the services it writes to answer (one-line
        error naming the service otherwise)."""
        ...


def spec(name: str) -> FlowSpec:
    """The flow called `name`; KeyError for an unknown one."""
    module = importlib.import_module(FLOWS[name])
    found: FlowSpec = module.SPEC
    return found
