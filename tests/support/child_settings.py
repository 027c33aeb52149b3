"""A stand-in for `tapeflow.cli` in a local cluster's children (`spawn_local_cluster(...,
module=...)`): writes the settings the child builds from its environment, secrets unwrapped,
to `$TAPEFLOW_TEST_CHILD_DIR/child-<process id>.json`, so a test can compare them with the
parent's."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tapeflow.settings import Settings


def revealed(settings: Settings) -> dict[str, object]:
    """Every setting as JSON-able values, secrets unwrapped (for comparing, never printing)."""
    dump: dict[str, object] = json.loads(settings.model_dump_json())
    access = dump["access"]
    assert isinstance(access, dict)
    for name, value in access.items():  # sets dump in hash order, which differs per process
        if isinstance(value, list):
            access[name] = sorted(value)
    for variable, value in settings.secret_environment().items():
        dump[variable] = value
    return dump


def main(argv: list[str]) -> int:
    process_id = argv[argv.index("--process-id") + 1]
    out = Path(os.environ["TAPEFLOW_TEST_CHILD_DIR"]) / f"child-{process_id}.json"
    out.write_text(json.dumps({"argv": argv, "settings": revealed(Settings())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
