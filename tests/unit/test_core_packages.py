"""The core's packages: each exports its API from `__init__`, and every core module imports on
its own in a fresh interpreter (the trading and risk packages read each other's modules, so an
import order that only works by accident would show here)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import tapeflow.core

CORE_MODULES = sorted(m.name for m in pkgutil.walk_packages(tapeflow.core.__path__,
                                                            "tapeflow.core."))


@pytest.mark.parametrize("package", ["tapeflow.core.market", "tapeflow.core.trading",
                                     "tapeflow.core.risk"])
def test_each_domain_package_exports_what_it_lists(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, package
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_every_core_module_imports_first_in_a_fresh_interpreter() -> None:
    script = ("import importlib, sys\n"
              "for name in sys.argv[1:]:\n"
              "    for loaded in [m for m in sys.modules if m.startswith('tapeflow')]:\n"
              "        del sys.modules[loaded]\n"
              "    importlib.import_module(name)\n")
    done = subprocess.run([sys.executable, "-c", script, *CORE_MODULES], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(CORE_MODULES) > 20
