"""The layering contract (import-linter, pyproject.toml) holds, and fails when broken; test
modules share helpers only through tests/support/."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["tapeflow", "flows", "sources", "sinks", "jobs", "schemas"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(exe), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, check=False)


def _copy_repo(tmp_path: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.sql", "*.avsc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_repository_keeps_its_contracts(tmp_path: Path) -> None:
    result = _lint_imports(_copy_repo(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("library", ["polars", "confluent_kafka", "bytewax", "psycopg",
                                     "clickhouse_connect"])
def test_a_core_module_importing_an_io_library_breaks_the_build(
    tmp_path: Path, library: str
) -> None:
    root = _copy_repo(tmp_path)
    (root / "tapeflow" / "core" / "sneaky.py").write_text(f"import {library}\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "tapeflow.core.sneaky" in result.stdout


@pytest.mark.parametrize("outside", ["tapeflow.settings", "tapeflow.services.postgres",
                                     "schemas.codec", "sinks.batching", "tapeflow.cli"])
def test_the_core_importing_anything_outside_the_core_breaks_the_build(
    tmp_path: Path, outside: str
) -> None:
    root = _copy_repo(tmp_path)
    (root / "tapeflow" / "core" / "market" / "sneaky.py").write_text(f"import {outside}\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "tapeflow.core.market.sneaky" in result.stdout


def test_test_modules_share_helpers_only_through_tests_support() -> None:
    """No module under tests/ imports a test module, a conftest or a private name: what two
    test modules share lives in tests/support/ under a public name."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                module, names = "", [alias.name for alias in node.names]
            else:
                continue
            for target in [module] if module else names:
                shared = target.startswith("tests.support.")
                if (target == "tests" or target.startswith(("tests.", "."))) and not shared:
                    offenders.append(f"{path.relative_to(REPO)}: {target}")
                elif shared:
                    offenders += [f"{path.relative_to(REPO)}: {target}.{name}"
                                  for name in names if name.startswith("_")]
    assert not offenders, "\n".join(offenders)
